#include "ergon/job.h"

namespace ergon {

void JobContext::complete_in_transaction(sqlite3*) {
  throw Error(ErrorCode::kUnsupported, "this context cannot complete in a transaction");
}

void JobContext::complete_in_transaction(pg_conn*) {
  throw Error(ErrorCode::kUnsupported, "this context cannot complete in a transaction");
}

void JobContext::set_result_json(std::string) {
  throw Error(ErrorCode::kUnsupported, "this context cannot keep a result");
}

const std::vector<std::string>& JobContext::tags() const {
  static const std::vector<std::string> none;
  return none;
}

nlohmann::json JobContext::meta() const { return nullptr; }

void HandlerRegistry::add_raw(std::string job_type, Invoker invoke, JobTypeOptions options) {
  if (job_type.empty()) throw Error(ErrorCode::kInvalidArgument, "job type name is empty");
  if (!invoke) {
    throw Error(ErrorCode::kInvalidArgument, "null handler for job type '" + job_type + "'");
  }
  if (options.max_attempts && *options.max_attempts < 1) {
    throw Error(ErrorCode::kInvalidArgument,
                "max_attempts of job type '" + job_type + "' must be at least 1");
  }
  auto [it, inserted] = entries_.try_emplace(job_type, Entry{std::move(invoke), options});
  if (!inserted) {
    throw Error(ErrorCode::kInvalidArgument,
                "a handler for job type '" + job_type + "' is already registered");
  }
}

void HandlerRegistry::use(Middleware middleware, std::string job_type) {
  if (!middleware) throw Error(ErrorCode::kInvalidArgument, "null execution middleware");
  middleware_.emplace_back(std::move(job_type), std::move(middleware));
}

void HandlerRegistry::run(const Entry& entry, std::string_view job_data,
                          JobContext& context) const {
  if (middleware_.empty()) return entry.invoke(job_data, context);
  const std::string_view type = context.job_type();
  // Middleware i wraps the rest of the chain: the next one that applies, at last the handler.
  std::function<void(std::size_t)> from = [&](std::size_t i) {
    while (i < middleware_.size() && !middleware_[i].first.empty() &&
           middleware_[i].first != type) {
      ++i;
    }
    if (i == middleware_.size()) return entry.invoke(job_data, context);
    middleware_[i].second(context, [&from, i] { from(i + 1); });
  };
  from(0);
}

const HandlerRegistry::Entry* HandlerRegistry::find(std::string_view job_type) const {
  auto it = entries_.find(job_type);
  return it == entries_.end() ? nullptr : &it->second;
}

std::vector<std::string> HandlerRegistry::types() const {
  std::vector<std::string> out;
  out.reserve(entries_.size());
  for (const auto& [type, entry] : entries_) out.push_back(type);
  return out;
}

}  // namespace ergon
