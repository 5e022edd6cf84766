#include "store/postgres/pg_pool.h"

#include <algorithm>

namespace ergon::postgres {
namespace {

constexpr auto kBackoffMin = std::chrono::milliseconds(50);
constexpr auto kBackoffMax = std::chrono::milliseconds(2000);

}  // namespace

PgPool::Lease::~Lease() {
  if (conn_) pool_->release(std::move(conn_));
}

PgPool::PgPool(pq::ConnParams params, int size) : params_(std::move(params)), size_(size) {}

PgPool::~PgPool() = default;

PgPool::Lease PgPool::acquire() {
  std::unique_lock lock(mu_);
  cv_.wait(lock, [&] { return !idle_.empty() || leased_ < size_; });
  ++leased_;
  if (!idle_.empty()) {
    auto conn = std::move(idle_.back());
    idle_.pop_back();
    return Lease(this, std::move(conn));
  }
  // A new connection. The slot is reserved (leased_), so the connect runs without the lock.
  auto now = std::chrono::steady_clock::now();
  if (failures_ > 0 && now < retry_at_) {
    --leased_;
    cv_.notify_one();
    auto wait = std::chrono::duration_cast<std::chrono::milliseconds>(retry_at_ - now);
    throw Error(ErrorCode::kStore, last_error_ + " (next connection attempt in " +
                                       std::to_string(wait.count()) + " ms)");
  }
  lock.unlock();
  try {
    auto conn = std::make_unique<pq::PgConnection>(pq::pg_connect(params_));
    lock.lock();
    failures_ = 0;
    pids_.insert(conn->backend_pid());
    return Lease(this, std::move(conn));
  } catch (const Error& e) {
    if (!lock.owns_lock()) lock.lock();
    --leased_;
    ++failures_;
    auto backoff = std::min<std::chrono::milliseconds>(
        kBackoffMax, kBackoffMin * (1 << std::min(failures_ - 1, 10)));
    retry_at_ = std::chrono::steady_clock::now() + backoff;
    last_error_ = e.what();
    cv_.notify_one();
    throw;
  }
}

void PgPool::release(std::unique_ptr<pq::PgConnection> conn) {
  // A call that threw may leave a transaction open: never let it reach the next caller.
  conn->rollback();
  bool broken = conn->broken();
  {
    std::lock_guard lock(mu_);
    --leased_;
    if (broken) {
      pids_.erase(conn->backend_pid());
    } else {
      idle_.push_back(std::move(conn));
    }
    cv_.notify_all();
  }
  if (!broken) return;
  conn.reset();  // closed outside the lock (PQfinish may send a terminate message)
  // The idle ones most likely went down with it (a server restart): drop them too, so that
  // each of the next calls does not fail on a stale connection first.
  drop_idle();
  for (PgPool* sibling : siblings_) sibling->drop_idle();
}

void PgPool::drop_idle() {
  std::vector<std::unique_ptr<pq::PgConnection>> closing;
  {
    std::lock_guard lock(mu_);
    for (auto& c : idle_) pids_.erase(c->backend_pid());
    closing = std::move(idle_);
    idle_.clear();
  }
  // `closing` is closed here, outside the lock.
}

void PgPool::share_failures_with(PgPool& other) {
  siblings_.push_back(&other);
  other.siblings_.push_back(this);
}

bool PgPool::owns_backend(int pid) const {
  std::lock_guard lock(mu_);
  return pids_.contains(pid);
}

}  // namespace ergon::postgres
