#include "runtime/service.h"

namespace ergon::runtime {

Service::~Service() { stop(); }

void Service::start() {
  if (!thread_.joinable()) thread_ = std::thread([this] { loop(); });
}

void Service::stop() {
  {
    std::lock_guard lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void Service::wake() {
  { std::lock_guard lock(mu_); }
  cv_.notify_all();
}

}  // namespace ergon::runtime
