#!/usr/bin/env node
// Fault-mix client: drives several JSON-RPC endpoints at once through a client library's own
// multi-endpoint transport (viem `fallback` with `rank: true`, or ethers v6 `FallbackProvider`
// with its default quorum) and prints one JSON line with every answer it got, so the caller
// (gateway/benches/faultmix.rs) can judge each one against the chain. See tests/js/README.md.
//
//   node tests/js/fallback.mjs --client viem|ethers --urls <url>,<url>,... --chain-id <n> \
//     --witness <0xaddress> --contract <0xaddress> --to <0xaddress> --duration-ms <n> \
//     [--start-at <unix ms>] [--tick-ms <n>] [--tx-every-ms <n>] [--nonce-url <url>] \
//     [--request-timeout-ms <n>]
//
// The sender's private key is read ONLY from the environment variable LIFELINE_CLIENT_KEY; it
// is never accepted on the command line and never printed.
//
// stdout carries exactly one JSON line; everything else (including anything the libraries log)
// goes to stderr (see cli.mjs).

import process from 'node:process';
import { performance } from 'node:perf_hooks';
import { cli, describe as describeError, sleep, withTimeout } from './cli.mjs';

const USAGE =
  'usage: LIFELINE_CLIENT_KEY=0x<64 hex> node tests/js/fallback.mjs --client viem|ethers ' +
  '--urls <url>,<url>,... --chain-id <n> --witness <0xaddress> --contract <0xaddress> ' +
  '--to <0xaddress> --duration-ms <n> [--start-at <unix ms>] [--tick-ms <n>] ' +
  '[--tx-every-ms <n>] [--nonce-url <url>] [--request-timeout-ms <n>]';

// ---------------------------------------------------------------------------
// Arguments

function parseCli() {
  const { fail, need, int, address, url, optional, client, key } = cli('fallback.mjs', USAGE, {
    client: { type: 'string' },
    urls: { type: 'string' },
    'chain-id': { type: 'string' },
    witness: { type: 'string' },
    contract: { type: 'string' },
    to: { type: 'string' },
    'duration-ms': { type: 'string' },
    'start-at': { type: 'string' },
    'tick-ms': { type: 'string' },
    'tx-every-ms': { type: 'string' },
    'nonce-url': { type: 'string' },
    'request-timeout-ms': { type: 'string' },
  });
  const HTTP = ['http:', 'https:'];
  const urls = need('urls')
    .split(',')
    .map((u) => u.trim())
    .filter((u) => u !== '')
    .map((u) => url('urls', u, HTTP));
  if (urls.length === 0) fail('--urls lists no URL');
  const opts = {
    client: client(),
    urls,
    chainId: int('chain-id', need('chain-id'), 1),
    witness: address('witness', need('witness')),
    contract: address('contract', need('contract')),
    to: address('to', need('to')),
    durationMs: int('duration-ms', need('duration-ms'), 1),
    startAt: optional('start-at', Date.now(), int, 0),
    tickMs: optional('tick-ms', 250, int, 1),
    txEveryMs: optional('tx-every-ms', 2000, int, 0),
    nonceUrl: optional('nonce-url', null, url, HTTP),
    requestTimeoutMs: optional('request-timeout-ms', 10_000, int, 1),
  };
  return { opts, key: key() };
}

// ---------------------------------------------------------------------------
// Helpers

const describe = (e) => describeError(e, 600);

/** Milliseconds since `start` (a performance.now() reading), to 0.01 ms. */
const elapsed = (start) => Math.round((performance.now() - start) * 100) / 100;

// Fees of the 1-wei transfers: fixed, far above anvil's base fee, so no fee lookup is needed.
const MAX_FEE = 100_000_000_000n; // 100 gwei
const TIP = 1_000_000_000n; // 1 gwei
// Gas limit 50,000 + the transfer's sequence number: unused gas is never charged, and no two
// transfers are the same bytes (a re-used nonce after a lost transfer gets a new hash).
const GAS_BASE = 50_000n;

// ---------------------------------------------------------------------------
// Library adapters: the same small surface for both.

/** viem: a public client over `fallback([http(url), ...], { rank: true })`, library defaults. */
async function makeViem(o, key) {
  const { createPublicClient, defineChain, fallback, http } = await import('viem');
  const { privateKeyToAccount } = await import('viem/accounts');
  const chain = defineChain({
    id: o.chainId,
    name: 'lifeline-faultmix',
    nativeCurrency: { name: 'Ether', symbol: 'ETH', decimals: 18 },
    rpcUrls: { default: { http: o.urls } },
  });
  // Transport settings are viem's defaults (fallback retries, 10 s HTTP timeout, ranking every
  // polling interval). Only the client's cache is off: with viem's default 4 s cacheTime,
  // getBlockNumber would be stale by design, not because of a route.
  const transport = fallback(
    o.urls.map((u) => http(u)),
    { rank: true },
  );
  const client = createPublicClient({ chain, transport, cacheTime: 0 });
  const account = privateKeyToAccount(key);
  return {
    address: account.address,
    blockNumber: async () => ({ n: Number(await client.getBlockNumber({ cacheTime: 0 })) }),
    latestBlock: async () => {
      const b = await client.getBlock({ blockTag: 'latest' });
      return { n: Number(b.number), h: b.hash };
    },
    balance: async () => ({ b: (await client.getBalance({ address: o.witness, blockTag: 'latest' })).toString() }),
    call: async () => {
      const r = await client.call({ to: o.contract, data: '0x', blockTag: 'latest' });
      return { d: r.data ?? '0x' };
    },
    pendingNonce: () => client.getTransactionCount({ address: account.address, blockTag: 'pending' }),
    send: async (seq, nonce) => {
      const serializedTransaction = await account.signTransaction({
        chainId: o.chainId,
        type: 'eip1559',
        to: o.to,
        value: 1n,
        nonce,
        gas: GAS_BASE + BigInt(seq),
        maxFeePerGas: MAX_FEE,
        maxPriorityFeePerGas: TIP,
      });
      return client.sendRawTransaction({ serializedTransaction });
    },
    close: async () => {},
  };
}

/** ethers v6: `FallbackProvider` over one JsonRpcProvider per URL, default quorum and weights. */
async function makeEthers(o, key) {
  const { FallbackProvider, JsonRpcProvider, Network, Wallet } = await import('ethers');
  const network = new Network('lifeline-faultmix', o.chainId);
  // staticNetwork: no eth_chainId before every call; cacheTimeout -1: no 250 ms answer cache,
  // every call reaches the routes. Everything else (quorum = half the weight, rounded up, i.e.
  // 3 of 5; stallTimeout 400 ms; batching) is ethers' default.
  const providers = o.urls.map(
    (u) => new JsonRpcProvider(u, network, { staticNetwork: network, cacheTimeout: -1 }),
  );
  const provider = new FallbackProvider(providers, network, { cacheTimeout: -1 });
  const wallet = new Wallet(key);
  return {
    address: wallet.address,
    blockNumber: async () => ({ n: Number(await provider.getBlockNumber()) }),
    latestBlock: async () => {
      const b = await provider.getBlock('latest');
      if (b === null) throw new Error('eth_getBlockByNumber(latest) returned null');
      return { n: Number(b.number), h: b.hash };
    },
    balance: async () => ({ b: (await provider.getBalance(o.witness, 'latest')).toString() }),
    call: async () => ({ d: await provider.call({ to: o.contract, data: '0x', blockTag: 'latest' }) }),
    pendingNonce: () => provider.getTransactionCount(wallet.address, 'pending'),
    send: async (seq, nonce) => {
      const signed = await wallet.signTransaction({
        chainId: o.chainId,
        type: 2,
        to: o.to,
        value: 1n,
        nonce,
        gasLimit: GAS_BASE + BigInt(seq),
        maxFeePerGas: MAX_FEE,
        maxPriorityFeePerGas: TIP,
      });
      const tx = await provider.broadcastTransaction(signed);
      return tx.hash;
    },
    close: async () => {
      try {
        await provider.destroy();
      } catch {
        /* ignore */
      }
    },
  };
}

// ---------------------------------------------------------------------------
// Records

const reads = []; // {m, t, ms, n?, h?, b?, d?, e?}
const txs = []; // {t, ms, hash?, e?}
const errorSamples = [];

function sample(s) {
  if (errorSamples.length < 8 && !errorSamples.includes(s)) errorSamples.push(s);
}

/** One read: its answer (fields merged into the record) or its error, with the arrival time. */
async function read(m, fn) {
  const sent = performance.now();
  try {
    const value = await withTimeout(fn(), OPTS.requestTimeoutMs, m);
    reads.push({ m, t: Date.now(), ms: elapsed(sent), ...value });
  } catch (e) {
    const msg = describe(e);
    reads.push({ m, t: Date.now(), ms: elapsed(sent), e: msg });
    sample(`${m}: ${msg}`);
  }
}

/** The pending nonce from the judge's node (bookkeeping: not one of the measured requests). */
async function chainNonce(address) {
  const res = await withTimeout(
    fetch(OPTS.nonceUrl, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'eth_getTransactionCount', params: [address, 'pending'] }),
    }).then((r) => r.json()),
    5000,
    'nonce',
  );
  if (typeof res?.result !== 'string') throw new Error(`nonce: ${JSON.stringify(res).slice(0, 200)}`);
  return Number(BigInt(res.result));
}

let printed = false;
function finish(timedOut) {
  if (printed) return;
  printed = true;
  const out = { client: OPTS.client, reads, txs, error_samples: errorSamples, timed_out: timedOut };
  process.stdout.write(JSON.stringify(out) + '\n', () => process.exit(0));
  setTimeout(() => process.exit(0), 2000).unref();
}

// ---------------------------------------------------------------------------
// Loops

/** The four reads, in order, once per tick (a slow tick delays the next one, none is skipped). */
async function readLoop(a, deadline) {
  let next = OPTS.startAt;
  while (Date.now() < deadline) {
    await read('eth_blockNumber', a.blockNumber);
    await read('eth_getBlockByNumber', a.latestBlock);
    await read('eth_getBalance', a.balance);
    await read('eth_call', a.call);
    next = Math.max(next + OPTS.tickMs, Date.now());
    await sleep(Math.min(next, deadline) - Date.now());
  }
}

async function txLoop(a, deadline) {
  if (OPTS.txEveryMs === 0) return;
  let next = OPTS.startAt + Math.floor(OPTS.txEveryMs / 2);
  let nonce = null;
  let seq = 0;
  await sleep(next - Date.now());
  while (Date.now() < deadline) {
    try {
      // With --nonce-url the chain says (a lost transfer never wedges the next ones); without
      // it the nonce is tracked here and re-read through the library after a failure.
      if (OPTS.nonceUrl !== null) nonce = await chainNonce(a.address);
      else if (nonce === null) nonce = Number(await withTimeout(a.pendingNonce(), OPTS.requestTimeoutMs, 'nonce'));
    } catch (e) {
      sample(`nonce: ${describe(e)}`);
      nonce = null;
    }
    if (nonce !== null) {
      seq += 1;
      const sent = performance.now();
      try {
        const hash = await withTimeout(a.send(seq, nonce), OPTS.requestTimeoutMs, 'eth_sendRawTransaction');
        txs.push({ t: Date.now(), ms: elapsed(sent), hash });
        nonce += 1;
      } catch (e) {
        const msg = describe(e);
        txs.push({ t: Date.now(), ms: elapsed(sent), e: msg });
        sample(`eth_sendRawTransaction: ${msg}`);
        nonce = null;
      }
    }
    next = Math.max(next + OPTS.txEveryMs, Date.now());
    await sleep(Math.min(next, deadline) - Date.now());
  }
}

// ---------------------------------------------------------------------------
// Main

const { opts: OPTS, key: KEY } = parseCli();

async function main() {
  const deadline = OPTS.startAt + OPTS.durationMs;
  // Hard bound: whatever happens, print what we have and leave.
  setTimeout(() => finish(true), Math.max(0, deadline - Date.now()) + 30_000).unref();
  process.on('unhandledRejection', (e) => sample(`unhandled rejection: ${describe(e)}`));
  const a = await (OPTS.client === 'viem' ? makeViem : makeEthers)(OPTS, KEY);
  await sleep(OPTS.startAt - Date.now());
  await Promise.all([readLoop(a, deadline), txLoop(a, deadline)]);
  await withTimeout(a.close(), 3000, 'close').catch(() => {});
}

main()
  .catch((e) => sample(`client: ${describe(e)}`))
  .finally(() => finish(false));
