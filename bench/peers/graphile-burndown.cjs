// graphile-worker burn-down, the peer of ergon-bench's `processing` (run by graphile.sh).
//
//   node graphile-burndown.cjs URL JOBS RUNS
//
// Per run, in a fresh schema (dropped afterwards): JOBS no-op jobs are added with
// WorkerUtils.addJobs (batches of 10,000; timed separately as the bulk enqueue), then one
// runner with graphile-worker's documented high-throughput ("batching") preset starts, and the
// time from run() until the last `job:complete` event (the outcome written back to the
// database) gives jobs/s. The table is then checked to be empty.
// The preset is the one of https://worker.graphile.org/docs/performance: concurrentJobs 24,
// maxPoolSize 25, localQueue.size 500, completeJobBatchDelay 0, failJobBatchDelay 0.
"use strict";
const { run, makeWorkerUtils } = require("graphile-worker");
const { Pool } = require("pg");

const [url, jobsArg, runsArg] = process.argv.slice(2);
const jobs = Number(jobsArg || 20000);
const runs = Number(runsArg || 3);
if (!url || !(jobs > 0) || !(runs > 0)) {
  console.error("usage: node graphile-burndown.cjs URL JOBS RUNS");
  process.exit(2);
}

// Only errors reach the terminal: the table is the output.
const { Logger } = require("graphile-worker");
const logger = new Logger(() => (level, message) => {
  if (level === "error") console.error(message);
});

function median(v) {
  const s = [...v].sort((a, b) => a - b);
  const n = s.length;
  return n % 2 ? s[(n - 1) / 2] : (s[n / 2 - 1] + s[n / 2]) / 2;
}

async function oneRun(r) {
  const schema = `gw_bench_${process.pid}_${r}`;
  const admin = new Pool({ connectionString: url, max: 1 });
  await admin.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
  const utils = await makeWorkerUtils({ connectionString: url, schema, logger });
  await utils.migrate();
  const e0 = performance.now();
  for (let done = 0; done < jobs; ) {
    const k = Math.min(10000, jobs - done);
    const specs = [];
    for (let i = 0; i < k; i++) specs.push({ identifier: "noop", payload: { n: done + i } });
    await utils.addJobs(specs);
    done += k;
  }
  const e1 = performance.now();
  await utils.release();

  let completed = 0;
  let failed = 0;
  let finish;
  const allDone = new Promise((resolve) => (finish = resolve));
  const preset = {
    worker: {
      connectionString: url,
      schema,
      concurrentJobs: 24,
      maxPoolSize: 25,
      localQueue: { size: 500 },
      completeJobBatchDelay: 0,
      failJobBatchDelay: 0,
    },
  };
  const t0 = performance.now();
  const runner = await run({
    preset,
    logger,
    taskList: {
      noop: async () => {},
    },
  });
  runner.events.on("job:complete", ({ error }) => {
    if (error) failed++;
    if (++completed === jobs) finish(performance.now());
  });
  const t1 = await allDone;
  await runner.stop();
  const left = Number(
    (await admin.query(`SELECT count(*) AS n FROM ${schema}._private_jobs`)).rows[0].n,
  );
  await admin.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
  await admin.end();
  if (failed > 0 || left > 0) throw new Error(`${failed} jobs failed, ${left} left in the table`);
  return { enqueue: jobs / ((e1 - e0) / 1000), processing: jobs / ((t1 - t0) / 1000) };
}

(async () => {
  const enq = [];
  const proc = [];
  for (let r = 1; r <= runs; r++) {
    console.error(`  graphile-worker run ${r}/${runs} ...`);
    const { enqueue, processing } = await oneRun(r);
    enq.push(enqueue);
    proc.push(processing);
  }
  const row = (name, v) =>
    console.log(
      `${name.padEnd(28)} ${median(v).toFixed(0).padStart(10)} ${Math.min(...v)
        .toFixed(0)
        .padStart(10)} ${Math.max(...v).toFixed(0).padStart(10)}  jobs/s`,
    );
  console.log(`graphile-worker ${require("graphile-worker/package.json").version}, ${jobs} jobs, ${runs} runs`);
  console.log(`${"figure".padEnd(28)} ${"median".padStart(10)} ${"min".padStart(10)} ${"max".padStart(10)}`);
  row("bulk enqueue (addJobs)", enq);
  row("processing (batching preset)", proc);
  console.log(JSON.stringify({ peer: "graphile-worker", jobs, runs, enqueue: enq, processing: proc }));
})().catch((e) => {
  console.error(e);
  process.exit(1);
});
