#include "runtime/executor.h"

#include <cxxabi.h>

#include <typeinfo>

#include "runtime/service.h"

namespace ergon::runtime {
namespace {

std::string demangled_name(const std::type_info& ti) {
  int status = 0;
  char* name = abi::__cxa_demangle(ti.name(), nullptr, nullptr, &status);
  std::string out = status == 0 && name ? name : ti.name();
  std::free(name);
  return out;
}

// "<exception type>: <what>", the form stored in error_message.
std::string describe_exception(const std::exception& e) {
  return demangled_name(typeid(e)) + ": " + e.what();
}

}  // namespace

void ExecutorOptions::validate() const {
  if (threads < 1) throw Error(ErrorCode::kInvalidArgument, "an executor needs a thread");
  if (max_result_bytes < 1 || max_result_bytes > (64 << 20)) {
    throw Error(ErrorCode::kInvalidArgument, "max_result_bytes must be 1 byte to 64 MiB");
  }
}

Executor::Executor(Store& store, std::string worker_id, const HandlerRegistry& handlers,
                   JobSlots& slots, Completer& completer, const Events& events,
                   ExecutorOptions options)
    : store_(store),
      clock_(store.clock()),
      worker_id_(std::move(worker_id)),
      handlers_(handlers),
      slots_(slots),
      completer_(completer),
      events_(events),
      options_(validated(std::move(options))) {}

Executor::~Executor() { stop(); }

void Executor::start() {
  if (!threads_.empty()) return;
  for (int i = 0; i < options_.threads; ++i) {
    threads_.emplace_back([this] {
      while (auto next = slots_.next(true)) handle(std::move(*next));
    });
  }
}

void Executor::stop() {
  slots_.stop_pool();
  for (auto& t : threads_) t.join();
  threads_.clear();
}

bool Executor::run_once() {
  auto next = slots_.next(false);
  if (!next) return false;
  handle(std::move(*next));
  return true;
}

void Executor::handle(JobSlots::Next next) {
  const JobRecord& job = next.job;
  TimePoint now = clock_.now();
  switch (next.action) {
    case JobSlots::Next::Action::kRun: {
      auto context = std::make_shared<AttemptContext>(
          store_, job, worker_id_, next.max_attempts, next.stop, options_.progress_interval,
          static_cast<std::size_t>(options_.max_result_bytes));
      slots_.started({job.id, job.lease}, context, now);
      return run_attempt(job, *context);
    }
    case JobSlots::Next::Action::kCancel:
      return completer_.enqueue(finished_attempt(job, cancelled_before_start(), worker_id_, now));
    case JobSlots::Next::Action::kRelease:
      return completer_.enqueue(finished_attempt(job, released(job.run_at), worker_id_, now));
    case JobSlots::Next::Action::kSkip:
      return completer_.enqueue({{job.id, job.lease}, job.attempt, std::nullopt, std::nullopt});
  }
}

void Executor::run_attempt(const JobRecord& job, AttemptContext& ctx) {
  events_.emit({JobEvent::Kind::kStarted, job.id, job.job_type, job.attempt, {}, job.queue});
  OutcomeInput in;
  in.result = invoke(job, ctx);
  JobSlots::Ended ended = slots_.finish({job.id, job.lease});
  if (in.result.kind == HandlerResult::Kind::kReturned && ctx.completes_in_transaction()) {
    in.result = check_transaction(job);
  }
  in.flags.cancel_requested = ended.cancel;
  in.flags.timed_out = ended.timed_out;
  in.flags.stopped_by_shutdown = ctx.stop_requested() && slots_.stopping();
  in.attempt = job.attempt;
  in.max_attempts = ctx.max_attempts();
  in.run_at = job.run_at;
  in.retry_base_delay = options_.retry_base_delay;
  in.retry_max_delay = options_.retry_max_delay;
  in.unit_random = unit_random();
  in.now = clock_.now();
  in.job_result = ctx.take_result();
  in.max_result_bytes = static_cast<std::size_t>(options_.max_result_bytes);
  Outcome o = decide_outcome(in);
  // The last progress report goes out with the outcome.
  completer_.enqueue(
      finished_attempt(job, o, worker_id_, in.now, o.write ? ctx.take_unwritten() : std::nullopt));
}

HandlerResult Executor::invoke(const JobRecord& job, AttemptContext& ctx) const {
  using Kind = HandlerResult::Kind;
  const auto* entry = handlers_.find(job.job_type);
  if (entry == nullptr) {
    return {Kind::kNoHandler, "no handler is registered for job type '" + job.job_type + "'"};
  }
  try {
    handlers_.run(*entry, job.job_data, ctx);
    return {};
  } catch (const Snooze& s) {
    return {Kind::kSnoozed, {}, s.delay()};
  } catch (const NonRetryableError& e) {
    return {Kind::kNonRetryable, describe_exception(e)};
  } catch (const std::exception& e) {
    return {Kind::kThrew, describe_exception(e)};
  } catch (...) {
    return {Kind::kThrew, "unknown exception (not derived from std::exception)"};
  }
}

// The handler completed the job in its own transaction. If that committed, the job is Completed
// for this attempt and there is nothing left to write; if it rolled back, the job is still
// Running for us and the attempt fails like any other.
HandlerResult Executor::check_transaction(const JobRecord& job) const {
  using Kind = HandlerResult::Kind;
  try {
    auto stored = store_.job_get(job.id);
    if (stored && stored->status == JobStatus::kCompleted && stored->lease == job.lease) {
      return {Kind::kCommittedInTransaction};
    }
    return {Kind::kTransactionNotCommitted,
            "the handler's transaction that completed the job did not commit"};
  } catch (const std::exception& e) {
    return {Kind::kTransactionNotCommitted,
            std::string("cannot check the transactional completion: ") + e.what()};
  }
}

}  // namespace ergon::runtime
