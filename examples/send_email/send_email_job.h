// The job from the original description: SendEmailJob and a handler that reports 0% and 100%.
#pragma once

#include <ergon/ergon.h>

#include <functional>
#include <string>
#include <utility>

struct SendEmailJob {
  static constexpr std::string_view kJobType = "send_email";  // stable: stored in jobs.job_type
  std::string recipient_email;
  std::string subject;
  std::string body;
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(SendEmailJob, recipient_email, subject, body)

class SendEmailJobHandler : public ergon::JobHandler<SendEmailJob> {
 public:
  // `send` does the actual delivery (an SMTP client in a real application).
  explicit SendEmailJobHandler(std::function<void(const SendEmailJob&)> send)
      : send_(std::move(send)) {}

  void handle(const SendEmailJob& job, ergon::JobContext& progress) override {
    progress.report_progress("Starting email send", 0);

    send_(job);  // throws on failure: the attempt is retried with back-off

    progress.report_progress("Email sent successfully", 100);
  }

 private:
  std::function<void(const SendEmailJob&)> send_;
};
