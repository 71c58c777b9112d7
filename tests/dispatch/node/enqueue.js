// Enqueue one job with Node's own BullMQ (as the Next.js platform's queue.ts does) and wait for its outcome.
//   node enqueue.js <redisUrl> <queueName> '<job data JSON>' [timeoutMs]
// Prints one JSON line: {"jobId", "state", "returnvalue", "failedReason", "progress"}.
"use strict";

const { Queue, Job } = require("bullmq");

async function main() {
  const [redisUrl, queueName, dataJson, timeoutArg] = process.argv.slice(2);
  const { hostname, port } = new URL(redisUrl);
  const connection = { host: hostname, port: Number(port || 6379) };
  const queue = new Queue(queueName, { connection });
  const job = await queue.add("generate", JSON.parse(dataJson), {
    attempts: 3,
    backoff: { type: "exponential", delay: 200 },
    removeOnComplete: { age: 3600 },
  });
  const deadline = Date.now() + Number(timeoutArg || 60000);
  let state = await job.getState();
  while (state !== "completed" && state !== "failed" && Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 100));
    state = await job.getState();
  }
  const done = await Job.fromId(queue, job.id);
  console.log(JSON.stringify({
    jobId: job.id, state, returnvalue: done.returnvalue, failedReason: done.failedReason || null,
    progress: done.progress,
  }));
  await queue.close();
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
