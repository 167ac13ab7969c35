// rate-limiter-flexible's RateLimiterRedis (one fixed-window limit per key, one EVALSHA per
// decision, over ioredis) on a given server: the peer the Redis bench reports beside ours.
//
// Usage: node bench.js <redis-url> <concurrent promises> <decisions>
// Prints one line of JSON: the decisions made, the seconds they took, how many were
// admitted, this process's CPU seconds over them, and each decision's latency in microseconds.
'use strict';
const Redis = require('ioredis');
const { RateLimiterRedis } = require('rate-limiter-flexible');

// As many subjects as the Rust variants rotate over.
const SUBJECTS = 4096;

async function main() {
  const [url, promises, decisions] = process.argv.slice(2);
  const tasks = Number(promises);
  const total = Number(decisions);
  if (!url || !(tasks >= 1) || !(total >= 1)) {
    throw new Error('usage: node bench.js <redis-url> <concurrent promises> <decisions>');
  }
  const redis = new Redis(url);
  // Roomy: every decision is admitted, as in the Rust variants.
  const limiter = new RateLimiterRedis({
    storeClient: redis,
    keyPrefix: 'bench:rlf',
    points: 1_000_000_000,
    duration: 3600,
  });
  // Warm up: the connection, the script in the server's cache.
  for (let i = 0; i < 640; i += 1) {
    await limiter.consume(`warm-${i % SUBJECTS}`, 1);
  }
  const perTask = Math.ceil(total / tasks);
  let admitted = 0;
  const latencies = new Array(perTask * tasks);
  async function task(t) {
    for (let n = 0; n < perTask; n += 1) {
      const i = t * perTask + n;
      const begun = process.hrtime.bigint();
      try {
        await limiter.consume(`tenant-${i % SUBJECTS}`, 1);
        admitted += 1;
      } catch (rejection) {
        if (rejection instanceof Error) {
          throw rejection;
        }
      }
      latencies[i] = Number(process.hrtime.bigint() - begun) / 1e3;
    }
  }
  const cpu = process.cpuUsage();
  const start = process.hrtime.bigint();
  await Promise.all(Array.from({ length: tasks }, (_, t) => task(t)));
  const seconds = Number(process.hrtime.bigint() - start) / 1e9;
  const used = process.cpuUsage(cpu);
  console.log(
    JSON.stringify({
      decisions: perTask * tasks,
      seconds,
      admitted,
      cpu_seconds: (used.user + used.system) / 1e6,
      latencies_us: latencies.map(Math.round),
    }),
  );
  redis.disconnect();
}

main().catch((error) => {
  console.error(error.message);
  process.exit(1);
});
