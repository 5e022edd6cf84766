// A complete program: enqueue SendEmailJob, run it with a worker, print what was stored.
// Usage: send_email [DATABASE_URL]   (default: sqlite:send_email_example.db)
#include <cstdio>
#include <future>

#include "send_email_job.h"

int main(int argc, char** argv) {
  std::string url = argc > 1 ? argv[1] : "sqlite:send_email_example.db";
  auto store = ergon::open_store(url);  // creates the file and the schema if needed

  ergon::HandlerRegistry handlers;
  handlers.add<SendEmailJob>(std::make_shared<SendEmailJobHandler>([](const SendEmailJob& job) {
    std::printf("sending '%s' to %s\n", job.subject.c_str(), job.recipient_email.c_str());
  }));

  std::promise<void> done;
  auto on_event = [&done](const ergon::JobEvent& e) {
    if (e.kind == ergon::JobEvent::Kind::kCompleted || e.kind == ergon::JobEvent::Kind::kFailed) {
      done.set_value();
    }
  };
  // Options are aggregates with a default for every member: designated initializers name only
  // what differs, warning-free under -Wall -Wextra.
  ergon::JobsWorker worker(store, std::move(handlers),
                           {.max_concurrent_jobs = 2, .on_event = on_event});
  worker.start();

  ergon::JobRunner runner(store);
  ergon::JobId id = runner.start_job(
      SendEmailJob{
          .recipient_email = "user@example.com",
          .subject = "Welcome!",
          .body = "Thank you for registering!",
      },
      {.max_attempts = 3, .tags = {"customer:42"}});

  done.get_future().wait();
  worker.stop();

  auto job = runner.get_job(id);
  std::printf("job %s: %s, %d%% \"%s\"\n", id.to_string().c_str(),
              std::string(ergon::to_string(job->status)).c_str(),
              job->progress_percent.value_or(-1), job->progress_message.value_or("").c_str());
  bool ok = job->status == ergon::JobStatus::kCompleted && job->progress_percent == 100;
  return ok ? 0 : 1;
}
