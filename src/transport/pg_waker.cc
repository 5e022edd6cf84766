#include "transport/pg_waker.h"

#include <spdlog/spdlog.h>

#include <system_error>
#include <utility>

namespace ergon::transport {

PgWaker::PgWaker(std::string channel, Borrow borrow)
    : channel_(std::move(channel)),
      borrow_(std::move(borrow)),
      // A transaction that notifies takes an XID, so its commit would wait for a WAL flush;
      // nothing here needs to survive a crash (a wake-up is a hint), so it commits without
      // waiting, and holds the notification lock only for the commit itself.
      notify_{"ergon_notify_async",
              R"sql(SELECT set_config('synchronous_commit', 'off', true), pg_notify($1, $2))sql"} {}

PgWaker::~PgWaker() { stop(); }

void PgWaker::stop() {
  {
    std::lock_guard lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

bool PgWaker::inline_begin() {
  std::lock_guard lock(mu_);
  if (inline_busy_ || inline_off_) return false;
  inline_busy_ = true;
  return true;
}

void PgWaker::inline_end() {
  std::lock_guard lock(mu_);
  inline_busy_ = false;
}

void PgWaker::TEST_inline(bool on) {
  std::lock_guard lock(mu_);
  inline_off_ = !on;
}

void PgWaker::later(std::string due) {
  std::lock_guard lock(mu_);
  // Payloads are fixed-width ISO-8601 UTC: text order is time order.
  if (pending_.empty() || due < pending_) pending_ = std::move(due);
  if (!thread_.joinable()) {
    try {
      thread_ = std::thread([this] { run(); });
    } catch (const std::system_error& e) {
      // The insert has committed: report it as done. The next quiet insert tries again.
      spdlog::warn("postgresql: no wake thread ({}); other processes rely on polling", e.what());
      return;
    }
  }
  cv_.notify_one();
}

// One notification per round for every insert that committed quietly since the last one, with
// the earliest due time among them. Inserts that commit while a round's notification is on its
// way are announced by the next round.
void PgWaker::run() {
  std::unique_lock lock(mu_);
  for (;;) {
    cv_.wait(lock, [&] { return stop_ || !pending_.empty(); });
    if (pending_.empty()) return;  // stopping, and nothing left to announce
    std::string due = std::exchange(pending_, {});
    lock.unlock();
    try {
      borrow_([&](pq::PgConnection& conn) {
        conn.run(notify_, pq::PgParams().text(channel_).text(due), pq::Format::kText);
      });
    } catch (const std::exception& e) {
      // The jobs are committed; only the hint is lost. Other processes' workers find them at
      // their next poll.
      spdlog::warn(
          "postgresql: wake-up for other processes not sent ({}); their workers find "
          "the new jobs at their next poll",
          e.what());
    }
    lock.lock();
  }
}

}  // namespace ergon::transport
