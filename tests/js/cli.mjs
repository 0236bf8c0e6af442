// What tests/js/client.mjs and tests/js/fallback.mjs share: stdout kept for their one JSON
// line, argument checks that name the argument and the value, the sender key from the
// environment only, and timing helpers.

import process from 'node:process';
import { parseArgs } from 'node:util';

// Keep stdout for the single result line: libraries (ethers in particular) log with
// console.log, so every console method goes to stderr. This module is evaluated before the
// scripts import any library.
for (const m of ['log', 'info', 'warn', 'debug']) console[m] = console.error;

/**
 * Parses `process.argv` against `options` (all `--name <string>`); any problem prints
 * `script: <problem>` and `usage`, and exits 2. Returns the values and checkers that exit the
 * same way.
 */
export function cli(script, usage, options) {
  const fail = (msg) => {
    process.stderr.write(`${script}: ${msg}\n${usage}\n`);
    process.exit(2);
  };
  let values;
  try {
    ({ values } = parseArgs({ args: process.argv.slice(2), strict: true, allowPositionals: false, options }));
  } catch (e) {
    fail(e.message);
  }
  const need = (name) => {
    const v = values[name];
    if (v === undefined || v === '') fail(`missing required argument --${name}`);
    return v;
  };
  const int = (name, v, min) => {
    if (!/^[0-9]+$/.test(v) || Number(v) < min || !Number.isSafeInteger(Number(v)))
      fail(`--${name} must be an integer >= ${min}, got ${JSON.stringify(v)}`);
    return Number(v);
  };
  const address = (name, v) => {
    if (!/^0x[0-9a-fA-F]{40}$/.test(v))
      fail(`--${name} must be a 0x-prefixed 20-byte hex address, got ${JSON.stringify(v)}`);
    return v;
  };
  const url = (name, v, schemes) => {
    let u;
    try {
      u = new URL(v);
    } catch {
      fail(`--${name} is not a valid URL: ${JSON.stringify(v)}`);
    }
    if (!schemes.includes(u.protocol))
      fail(`--${name} must use ${schemes.map((s) => s + '//').join(' or ')}, got ${JSON.stringify(v)}`);
    return v;
  };
  /** `--name` checked by `check(name, value, ...rest)`, or `fallback` when absent. */
  const optional = (name, fallback, check, ...rest) =>
    values[name] !== undefined ? check(name, values[name], ...rest) : fallback;
  const client = () => {
    const c = need('client');
    if (c !== 'viem' && c !== 'ethers') fail(`--client must be "viem" or "ethers", got ${JSON.stringify(c)}`);
    return c;
  };
  /** The sender's private key: from LIFELINE_CLIENT_KEY only, never the command line. */
  const key = () => {
    const raw = process.env.LIFELINE_CLIENT_KEY;
    if (raw === undefined || raw.trim() === '')
      fail('missing environment variable LIFELINE_CLIENT_KEY (the sender private key; it is never taken from the command line)');
    const k = raw.trim().startsWith('0x') ? raw.trim() : `0x${raw.trim()}`;
    if (!/^0x[0-9a-fA-F]{64}$/.test(k))
      fail('environment variable LIFELINE_CLIENT_KEY must be a 32-byte hex private key (value not shown)');
    return k;
  };
  return { values, fail, need, int, address, url, optional, client, key };
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, Math.max(0, ms)));

class Timeout extends Error {}

/** Race `promise` against a timer; the timer never keeps the process alive. */
export function withTimeout(promise, ms, what) {
  let t;
  const timer = new Promise((_, reject) => {
    t = setTimeout(() => reject(new Timeout(`no answer within ${ms} ms (${what})`)), Math.max(1, ms));
  });
  return Promise.race([promise, timer]).finally(() => clearTimeout(t));
}

/** An error in one line of at most `max` characters. */
export function describe(e, max) {
  let msg = String(e?.shortMessage ?? e?.message ?? e).split('\n')[0];
  // viem keeps the useful part (server message, "fetch failed", ...) in `details`.
  const details = typeof e?.details === 'string' ? e.details.split('\n')[0] : '';
  if (details && !msg.includes(details)) msg = `${msg} ${details}`;
  return msg.slice(0, max);
}
