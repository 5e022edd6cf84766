// The end-to-end browser test of the dashboard (run by browser_test.sh):
//   load the overview, filter the job list, open a job, watch its progress move, retry a
//   failed job and see it complete; the HTML-looking payload and error must stay text.
// Time is driven by conditions (waitForFunction, the server's stdin), not fixed sleeps.
"use strict";
const path = require("path");
const readline = require("readline");
const { spawn } = require("child_process");
const { chromium } = require(path.join(process.env.ERGON_PLAYWRIGHT_DIR, "node_modules", "playwright-core"));

const [serverBin, dbUrl, shots] = process.argv.slice(2);
const EVIL = "<img src=x onerror=alert(1)>";

function fail(message) {
  console.error("FAIL: " + message);
  process.exitCode = 1;
  throw new Error(message);
}

async function startServer() {
  const child = spawn(serverBin, [dbUrl], { stdio: ["pipe", "pipe", "inherit"] });
  const info = {};
  const lines = readline.createInterface({ input: child.stdout });
  await new Promise((resolve, reject) => {
    child.on("exit", (code) => reject(new Error("e2e server exited with " + code)));
    lines.on("line", (line) => {
      const [k, v] = line.split(" ");
      info[k] = v;
      if (k === "READY") resolve();
    });
  });
  info.child = child;
  return info;
}

async function main() {
  const server = await startServer();
  console.log("dashboard at " + server.URL);
  const browser = await chromium.launch({
    executablePath: process.env.ERGON_CHROMIUM,
    args: ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"],
  });
  const problems = [];
  try {
    const page = await browser.newPage({ viewport: { width: 1280, height: 860 } });
    page.on("dialog", async (d) => { problems.push("dialog: " + d.type() + " " + d.message()); await d.dismiss(); });
    page.on("pageerror", (e) => problems.push("page error: " + e.message));
    page.on("console", (m) => { if (m.type() === "error") problems.push("console: " + m.text()); });
    page.on("response", (r) => { if (r.status() >= 400) problems.push(`HTTP ${r.status()} for ${r.url()}`); });

    // 1. Load.
    await page.goto(server.URL);
    await page.waitForSelector("h1:text('Overview')");
    await page.waitForSelector("[data-testid=workers-alive]");
    await page.screenshot({ path: path.join(shots, "overview.png"), fullPage: true });
    console.log("ok: overview loaded");

    // 2. Filter: Failed jobs only.
    await page.click("a[data-nav=jobs]");
    await page.waitForSelector("form[data-testid=filters]");
    await page.selectOption("select[name=status]", "Failed");
    await page.click("form[data-testid=filters] button[type=submit]");
    await page.waitForFunction((id) => {
      const rows = [...document.querySelectorAll("tr[data-job-id]")];
      return rows.length > 0 && rows.every((r) => r.querySelector("[data-status=Failed]")) &&
        rows.some((r) => r.dataset.jobId === id);
    }, server.FAILED_JOB);
    if (!page.url().includes("status=Failed")) fail("the filter is not in the URL: " + page.url());
    console.log("ok: filtered to Failed");

    // 3. Open the failed job; its payload and error are shown as text, never as HTML.
    await page.click(`tr[data-job-id="${server.FAILED_JOB}"] a`);
    await page.waitForSelector("[data-testid=payload]");
    const payload = await page.textContent("[data-testid=payload]");
    if (!payload.includes(EVIL)) fail("payload text missing: " + payload);
    const error = await page.textContent("[data-testid=error]");
    if (!error.includes(EVIL)) fail("error text missing: " + error);
    if (await page.locator("img").count() !== 0) fail("an <img> element was created from job text");
    console.log("ok: job opened; HTML in payload and error stays text");

    // 4. Watch progress move: the server advances the handler only when told.
    await page.goto(server.URL + "#/job/" + server.PROGRESS_JOB);
    // Only a hash change: until the route has rendered the new job, the page still shows the
    // failed job's (whose progress is "–"). Wait for this job's page with a percentage.
    await page.waitForFunction((id) => {
      const p = document.querySelector("[data-testid=progress-percent]");
      return document.body.textContent.includes(id) && p && /^\d+%$/.test(p.textContent);
    }, server.PROGRESS_JOB);
    const percent = async () => parseInt(await page.textContent("[data-testid=progress-percent]"), 10);
    let last = await percent();
    if (!(last >= 10)) fail("progress should start at 10%, is " + last);
    for (let i = 0; i < 3; ++i) {
      server.child.stdin.write("advance\n");
      await page.waitForFunction((before) => {
        const v = parseInt(document.querySelector("[data-testid=progress-percent]").textContent, 10);
        return v > before;
      }, last);
      const now = await percent();
      const width = await page.$eval(".progress > div", (d) => d.style.width);
      console.log(`ok: progress ${last}% -> ${now}% (bar ${width})`);
      if (width !== now + "%") fail("the bar shows " + width + " for " + now + "%");
      last = now;
    }
    const message = await page.textContent("[data-testid=progress-message]");
    if (!message.startsWith("encoding segment")) fail("progress message: " + message);
    await page.screenshot({ path: path.join(shots, "job-progress.png"), fullPage: true });
    await page.goto(server.URL + "#/jobs");
    await page.waitForFunction(() => document.querySelectorAll("tr[data-job-id]").length >= 10);
    await page.screenshot({ path: path.join(shots, "jobs.png") });

    // The recurring job: its plain-language reading and its next five runs.
    await page.goto(server.URL + "#/schedules");
    await page.waitForSelector("tr[data-schedule=weekday-digest] [data-testid=cron-description]:text('at 07:00, Monday to Friday')");
    const next = await page.textContent("tr[data-schedule=weekday-digest] td.mono");
    if (next.trim().split("\n").length !== 5) fail("expected five next runs, got: " + next);
    await page.screenshot({ path: path.join(shots, "schedules.png") });
    console.log("ok: recurring job described, five next runs");

    // 5. Retry the failed job; the handler succeeds on its second attempt.
    await page.goto(server.URL + "#/job/" + server.FAILED_JOB);
    await page.waitForSelector("button[data-action=retry]");
    await page.click("button[data-action=retry]");
    await page.waitForSelector("[data-testid=flash]:text('job retried')");
    await page.waitForSelector("p > [data-status=Completed]", { timeout: 30000 });
    console.log("ok: retried a failed job; it completed");
    // Its page now tells both attempts, oldest first, and shows what the second returned; the
    // HTML-looking error and result stay text.
    await page.waitForFunction(() => document.querySelectorAll("tr[data-testid=attempt]").length === 2);
    const outcomes = await page.$$eval("tr[data-testid=attempt] [data-testid=attempt-outcome]",
      (cells) => cells.map((c) => c.textContent));
    if (outcomes.join(",") !== "failed,completed") fail("attempt timeline: " + outcomes.join(","));
    const firstError = await page.textContent("tr[data-testid=attempt] td.clip");
    if (!firstError.includes(EVIL)) fail("the first attempt's error is missing: " + firstError);
    const result = await page.textContent("[data-testid=result]");
    if (!result.includes('"charged": 1042') || !result.includes(EVIL)) fail("result: " + result);
    if (await page.locator("img").count() !== 0) fail("an <img> element was created from job text");
    await page.screenshot({ path: path.join(shots, "job-attempts.png"), fullPage: true });
    console.log("ok: the attempt timeline shows the failed and the completed attempt, and the result");

    // The audit log names the retry.
    await page.goto(server.URL + "#/audit");
    await page.waitForSelector(`td:text("${server.FAILED_JOB}")`);
    console.log("ok: the retry is in the audit log");

    // Finish the video job so the list shows a full history, then the screenshot.
    for (let i = 0; i < 7; ++i) server.child.stdin.write("advance\n");
    await page.goto(server.URL + "#/");
    await page.waitForSelector("[data-testid=workers-alive]");
    await page.screenshot({ path: path.join(shots, "dashboard.png"), fullPage: true });
    if (problems.length) fail("problems in the page:\n  " + problems.join("\n  "));
    console.log("screenshots in " + shots);
  } finally {
    await browser.close();
    server.child.stdin.end();
    await new Promise((resolve) => server.child.on("exit", resolve));
  }
}

main().then(() => { if (!process.exitCode) console.log("browser test passed"); },
  (e) => { console.error(e && e.stack ? e.stack : e); process.exitCode = 1; });
