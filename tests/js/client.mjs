#!/usr/bin/env node
// Lifeline end-to-end JSON-RPC client: drives an endpoint (normally `lifeline gateway`)
// with a real, unmodified third-party client library (viem or ethers v6) for a fixed
// duration and prints one JSON line of what it saw. See tests/js/README.md.
//
//   node tests/js/client.mjs --client viem|ethers --http <url> --ws <url> \
//     --duration-ms <n> --to <0xaddress> [--log-address <0x..> --log-topic <0x..>] \
//     [--tx-every-ms <n>] [--chain-id <n>] [--request-timeout-ms <n>]
//
// The sender's private key is read ONLY from the environment variable
// LIFELINE_CLIENT_KEY; it is never accepted on the command line and never printed.
//
// stdout carries exactly one JSON line; everything else (including anything the
// libraries themselves log) goes to stderr (see cli.mjs).

import process from 'node:process';
import { cli, describe as describeError, sleep, withTimeout } from './cli.mjs';

const USAGE =
  'usage: LIFELINE_CLIENT_KEY=0x<64 hex> node tests/js/client.mjs --client viem|ethers ' +
  '--http <url> --ws <url> --duration-ms <n> --to <0xaddress> ' +
  '[--log-address <0xaddress> [--log-topic <0x32-byte topic>]] [--tx-every-ms <n>] ' +
  '[--chain-id <n>] [--request-timeout-ms <n>]';

// ---------------------------------------------------------------------------
// Arguments

function parseCli() {
  const { values, fail, need, int, address, url, optional, client, key } = cli('client.mjs', USAGE, {
    client: { type: 'string' },
    http: { type: 'string' },
    ws: { type: 'string' },
    'duration-ms': { type: 'string' },
    to: { type: 'string' },
    'log-address': { type: 'string' },
    'log-topic': { type: 'string' },
    'tx-every-ms': { type: 'string' },
    'chain-id': { type: 'string' },
    'request-timeout-ms': { type: 'string' },
  });
  const opts = {
    client: client(),
    http: url('http', need('http'), ['http:', 'https:']),
    ws: url('ws', need('ws'), ['ws:', 'wss:']),
    durationMs: int('duration-ms', need('duration-ms'), 1),
    to: address('to', need('to')),
    logAddress: optional('log-address', null, address),
    logTopic: null,
    txEveryMs: optional('tx-every-ms', 1000, int, 0),
    chainId: optional('chain-id', null, int, 1),
    requestTimeoutMs: optional('request-timeout-ms', 5000, int, 1),
  };
  if (values['log-topic'] !== undefined) {
    if (!/^0x[0-9a-fA-F]{64}$/.test(values['log-topic']))
      fail(`--log-topic must be a 0x-prefixed 32-byte hex topic, got ${JSON.stringify(values['log-topic'])}`);
    if (opts.logAddress === null) fail('--log-topic requires --log-address');
    opts.logTopic = values['log-topic'];
  }
  return { opts, key: key() };
}

// ---------------------------------------------------------------------------
// Small helpers

const describe = (e) => describeError(e, 300);

const num = (v) => (v === null || v === undefined ? null : Number(typeof v === 'string' ? BigInt(v) : v));

// ---------------------------------------------------------------------------
// Statistics (everything printed at the end)

const stats = {
  requests: 0,
  errors: 0,
  errorSamples: [],
  readsByMethod: {},
  errorsByMethod: {},
  txSent: 0,
  txMined: 0,
  txReverted: 0,
  txErrors: 0,
  receiptErrors: 0,
  heads: [],
  logs: [],
  wsErrors: 0,
  wsErrorSamples: [],
};

function pushSample(list, s) {
  if (list.length < 5 && !list.includes(s)) list.push(s);
}

function recordError(method, e) {
  stats.errors += 1;
  pushSample(stats.errorSamples, `${method}: ${describe(e)}`);
}

let closing = false;
function recordWsError(what, e) {
  if (closing) return; // errors caused by our own shutdown are not the endpoint's fault
  stats.wsErrors += 1;
  pushSample(stats.wsErrorSamples, `${what}: ${describe(e)}`);
}

let printed = false;
function finish(timedOut) {
  if (printed) return;
  printed = true;
  closing = true;
  const out = {
    client: OPTS.client,
    requests: stats.requests,
    errors: stats.errors,
    error_samples: stats.errorSamples,
    reads_by_method: stats.readsByMethod,
    tx_sent: stats.txSent,
    tx_mined: stats.txMined,
    heads: stats.heads,
    logs: stats.logs,
    ws_errors: stats.wsErrors,
    // Extra detail (not needed for the basic assertions):
    errors_by_method: stats.errorsByMethod,
    tx_errors: stats.txErrors,
    tx_reverted: stats.txReverted,
    receipt_errors: stats.receiptErrors,
    ws_error_samples: stats.wsErrorSamples,
    timed_out: timedOut,
  };
  process.stdout.write(JSON.stringify(out) + '\n', () => process.exit(0));
  // In case the write callback never fires (closed pipe), still leave.
  setTimeout(() => process.exit(0), 2000).unref();
}

// Gas limit of the 1-wei transfers. Not 21000: a plain transfer to an EOA uses 21000
// anyway (the rest is never charged), but a transfer to a precompile such as 0x..01
// (ecrecover, 3000 gas) or to a contract with a cheap receive() would run out of gas
// and be mined as reverted.
const GAS_LIMIT = 50_000n;

// ---------------------------------------------------------------------------
// Library adapters. Each exposes the same small surface so the driving loop below
// is identical for both clients.

/**
 * viem: public client + wallet client over the http transport; subscriptions over
 * the webSocket transport via `transport.subscribe` (raw eth_subscribe, so every
 * head/log the endpoint pushes is recorded, with no client-side dedupe or polling).
 */
async function makeViem(o, chainId, key) {
  const { createPublicClient, createWalletClient, defineChain, http, webSocket } = await import('viem');
  const { privateKeyToAccount } = await import('viem/accounts');

  const chain = defineChain({
    id: chainId,
    name: 'lifeline-e2e',
    nativeCurrency: { name: 'Ether', symbol: 'ETH', decimals: 18 },
    rpcUrls: { default: { http: [o.http], webSocket: [o.ws] } },
  });
  // retryCount: 0 everywhere: we measure the gateway, not the client's retry logic.
  // With viem's default (3 retries with backoff) a failing request would be hidden
  // from `errors` whenever a retry happened to succeed.
  const httpTransport = http(o.http, { retryCount: 0, timeout: o.requestTimeoutMs, batch: false });
  // cacheTime: 0 so getBlockNumber really asks the endpoint every time (viem
  // otherwise serves it from a 4 s cache).
  const pub = createPublicClient({ chain, transport: httpTransport, cacheTime: 0 });
  const account = privateKeyToAccount(key);
  const wallet = createWalletClient({ account, chain, transport: httpTransport, cacheTime: 0 });
  // reconnect: false: a dropped socket must show up as ws_errors and a gap in the
  // heads, not be papered over by viem silently reconnecting and resubscribing.
  const wsClient = createPublicClient({
    chain,
    transport: webSocket(o.ws, { retryCount: 0, reconnect: false, timeout: o.requestTimeoutMs }),
  });
  const unsubs = [];

  return {
    blockNumber: async () => Number(await pub.getBlockNumber({ cacheTime: 0 })),
    balance: (a) => pub.getBalance({ address: a, blockTag: 'latest' }),
    latestBlock: async () => {
      const b = await pub.getBlock({ blockTag: 'latest' });
      return { number: Number(b.number), baseFeePerGas: b.baseFeePerGas ?? null };
    },
    getLogs: (fromBlock, toBlock, address, topic) =>
      // Raw eth_getLogs through the viem client: viem's getLogs action can only
      // filter topics via an ABI event, and we filter on a bare topic.
      pub.request({
        method: 'eth_getLogs',
        params: [
          {
            fromBlock: `0x${fromBlock.toString(16)}`,
            toBlock: `0x${toBlock.toString(16)}`,
            ...(address ? { address } : {}),
            ...(topic ? { topics: [topic] } : {}),
          },
        ],
      }),
    pendingNonce: () => pub.getTransactionCount({ address: account.address, blockTag: 'pending' }),
    // Signed locally by the privateKeyToAccount account; viem then sends
    // eth_sendRawTransaction. Every field is given, so viem fills nothing itself.
    sendTransfer: ({ to, nonce, maxFeePerGas, maxPriorityFeePerGas }) =>
      wallet.sendTransaction({
        to,
        value: 1n,
        nonce,
        gas: GAS_LIMIT,
        maxFeePerGas,
        maxPriorityFeePerGas,
        type: 'eip1559',
        // chainId given explicitly too: without it viem first tries eth_fillTransaction.
        chainId,
        chain,
      }),
    receipt: async (hash) => {
      try {
        const r = await pub.getTransactionReceipt({ hash });
        return { ok: r.status === 'success' };
      } catch (e) {
        if (e?.name === 'TransactionReceiptNotFoundError') return null;
        throw e;
      }
    },
    subscribeHeads: async (onHead, onError) => {
      const { unsubscribe } = await wsClient.transport.subscribe({
        params: ['newHeads'],
        onData: (d) => onHead(num(d.result.number)),
        onError,
      });
      unsubs.push(unsubscribe);
    },
    subscribeLogs: async (address, topic, onLog, onError) => {
      const { unsubscribe } = await wsClient.transport.subscribe({
        params: ['logs', { address, ...(topic ? { topics: [topic] } : {}) }],
        onData: (d) =>
          onLog({
            blockNumber: num(d.result.blockNumber),
            logIndex: num(d.result.logIndex),
            transactionHash: d.result.transactionHash,
            removed: d.result.removed === true,
          }),
        onError,
      });
      unsubs.push(unsubscribe);
    },
    close: async () => {
      await Promise.allSettled(unsubs.map((u) => withTimeout(u(), 1000, 'eth_unsubscribe')));
      try {
        (await withTimeout(wsClient.transport.getRpcClient(), 1000, 'ws client')).close();
      } catch {
        /* never connected */
      }
    },
  };
}

/**
 * ethers v6: JsonRpcProvider + Wallet (local signing, eth_sendRawTransaction) over
 * HTTP, WebSocketProvider (eth_subscribe) for heads and logs.
 */
async function makeEthers(o, chainId, key) {
  const { FetchRequest, JsonRpcProvider, Network, Wallet, WebSocketProvider } = await import('ethers');

  const network = new Network('lifeline-e2e', chainId);
  const req = new FetchRequest(o.http);
  req.timeout = o.requestTimeoutMs; // default is 5 minutes
  // No retries on HTTP 429 either: we measure the gateway, not the client's retry logic.
  req.retryFunc = async () => false;
  const provider = new JsonRpcProvider(req, network, {
    staticNetwork: network, // never send eth_chainId (ethers otherwise re-checks it constantly)
    batchMaxCount: 1, // one JSON-RPC request per HTTP request, no batching
    cacheTimeout: -1, // no 250 ms request de-duplication cache: every call hits the wire
    polling: false,
  });
  const wallet = new Wallet(key, provider);

  const wsp = new WebSocketProvider(o.ws, network, { staticNetwork: network });
  // ethers v6 neither reconnects nor listens for socket errors; without an 'error'
  // listener the `ws` package would throw. Count them instead.
  const sock = wsp.websocket;
  sock.on('error', (e) => recordWsError('websocket error', e));
  sock.on('close', (code, reason) =>
    recordWsError('websocket closed', new Error(`code ${code} ${String(reason || '')}`.trim())),
  );
  wsp.on('error', (e) => recordWsError('ws provider error', e));

  return {
    blockNumber: () => provider.getBlockNumber(),
    balance: (a) => provider.getBalance(a, 'latest'),
    latestBlock: async () => {
      const b = await provider.getBlock('latest');
      if (b === null) throw new Error('eth_getBlockByNumber(latest) returned null');
      return { number: b.number, baseFeePerGas: b.baseFeePerGas ?? null };
    },
    getLogs: (fromBlock, toBlock, address, topic) =>
      provider.getLogs({
        fromBlock,
        toBlock,
        ...(address ? { address } : {}),
        ...(topic ? { topics: [topic] } : {}),
      }),
    pendingNonce: () => provider.getTransactionCount(wallet.address, 'pending'),
    // Wallet signs locally and broadcasts with eth_sendRawTransaction; all fields are
    // given so ethers does not estimate gas or fetch fee data.
    sendTransfer: async ({ to, nonce, maxFeePerGas, maxPriorityFeePerGas }) => {
      const tx = await wallet.sendTransaction({
        to,
        value: 1n,
        nonce,
        gasLimit: GAS_LIMIT,
        maxFeePerGas,
        maxPriorityFeePerGas,
        type: 2,
        chainId,
      });
      return tx.hash;
    },
    receipt: async (hash) => {
      const r = await provider.getTransactionReceipt(hash);
      return r === null ? null : { ok: r.status === 1 };
    },
    subscribeHeads: async (onHead) => {
      await wsp.on('block', (n) => onHead(Number(n)));
    },
    subscribeLogs: async (address, topic, onLog) => {
      await wsp.on({ address, ...(topic ? { topics: [topic] } : {}) }, (log) =>
        onLog({
          blockNumber: Number(log.blockNumber),
          logIndex: Number(log.index),
          transactionHash: log.transactionHash,
          removed: log.removed === true,
        }),
      );
    },
    close: async () => {
      try {
        await withTimeout(wsp.destroy(), 1000, 'ws destroy');
      } catch {
        /* ignore */
      }
      provider.destroy();
    },
  };
}

// ---------------------------------------------------------------------------
// Driving loops

/** One counted HTTP read: returns the result, or undefined on error. */
async function read(method, fn) {
  stats.requests += 1;
  stats.readsByMethod[method] = (stats.readsByMethod[method] ?? 0) + 1;
  try {
    return await withTimeout(fn(), OPTS.requestTimeoutMs + 1000, method);
  } catch (e) {
    stats.errorsByMethod[method] = (stats.errorsByMethod[method] ?? 0) + 1;
    recordError(method, e);
    return undefined;
  }
}

/** eth_chainId once before anything else (plain fetch: not measured unless it fails). */
async function bootstrapChainId(deadline) {
  let lastErr = null;
  while (Date.now() < deadline) {
    try {
      const res = await withTimeout(
        fetch(OPTS.http, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'eth_chainId', params: [] }),
        }).then((r) => r.json()),
        Math.min(OPTS.requestTimeoutMs, Math.max(1, deadline - Date.now())),
        'eth_chainId',
      );
      if (typeof res?.result === 'string') return Number(BigInt(res.result));
      lastErr = new Error(`eth_chainId: bad response ${JSON.stringify(res).slice(0, 200)}`);
    } catch (e) {
      lastErr = e;
    }
    stats.requests += 1;
    recordError('eth_chainId', lastErr);
    await sleep(Math.min(200, deadline - Date.now()));
  }
  return null;
}

const READ_INTERVAL_MS = 50;
const LOG_WINDOW_BLOCKS = 4; // getLogs over [head-4, head]
const TIP = 1_000_000_000n; // 1 gwei priority fee
const FALLBACK_MAX_FEE = 100_000_000_000n; // used until a block's baseFeePerGas has been seen

let latestBaseFee = null;

async function readLoop(a, deadline) {
  let lastHead = null;
  while (Date.now() < deadline) {
    const t0 = Date.now();
    const bn = await read('eth_blockNumber', () => a.blockNumber());
    if (bn !== undefined) lastHead = bn;
    await read('eth_getBalance', () => a.balance(OPTS.to));
    const blk = await read('eth_getBlockByNumber', () => a.latestBlock());
    if (blk !== undefined) {
      if (blk.baseFeePerGas !== null) latestBaseFee = BigInt(blk.baseFeePerGas);
      if (lastHead === null) lastHead = blk.number;
    }
    if (lastHead !== null) {
      const from = Math.max(0, lastHead - LOG_WINDOW_BLOCKS);
      await read('eth_getLogs', () => a.getLogs(from, lastHead, OPTS.logAddress, OPTS.logTopic));
    }
    await sleep(Math.min(READ_INTERVAL_MS - (Date.now() - t0), deadline - Date.now()));
  }
}

async function txLoop(a, deadline, hashes) {
  if (OPTS.txEveryMs === 0) return;
  let nonce = null; // null = unknown: (re-)read the pending nonce before the next send
  while (Date.now() < deadline) {
    const t0 = Date.now();
    if (nonce === null) {
      const n = await read('eth_getTransactionCount', () => a.pendingNonce());
      if (n !== undefined) nonce = Number(n);
    }
    if (nonce !== null && Date.now() < deadline) {
      const maxFeePerGas = latestBaseFee !== null ? latestBaseFee * 2n + TIP : FALLBACK_MAX_FEE;
      stats.requests += 1;
      try {
        const hash = await withTimeout(
          a.sendTransfer({ to: OPTS.to, nonce, maxFeePerGas, maxPriorityFeePerGas: TIP }),
          OPTS.requestTimeoutMs + 1000,
          'eth_sendRawTransaction',
        );
        stats.txSent += 1;
        hashes.push(hash);
        nonce += 1;
      } catch (e) {
        stats.txErrors += 1;
        recordError('eth_sendRawTransaction', e);
        // The send may or may not have reached a node: ask again instead of guessing,
        // so a failed send never wedges the loop on a wrong nonce.
        nonce = null;
      }
    }
    await sleep(Math.min(t0 + OPTS.txEveryMs, deadline) - Date.now());
  }
}

const RECEIPT_WAIT_MS = 10_000;

async function waitReceipts(a, hashes) {
  const pending = new Set(hashes);
  const deadline = Date.now() + RECEIPT_WAIT_MS;
  while (pending.size > 0 && Date.now() < deadline) {
    for (const h of [...pending]) {
      const left = deadline - Date.now();
      if (left <= 0) break;
      try {
        const r = await withTimeout(a.receipt(h), Math.min(OPTS.requestTimeoutMs, left), 'eth_getTransactionReceipt');
        if (r !== null) {
          pending.delete(h);
          stats.txMined += 1;
          if (!r.ok) stats.txReverted += 1;
        }
      } catch {
        stats.receiptErrors += 1;
      }
    }
    if (pending.size > 0) await sleep(Math.min(250, deadline - Date.now()));
  }
}

// ---------------------------------------------------------------------------
// Main

const { opts: OPTS, key: KEY } = parseCli();

async function main() {
  const started = Date.now();
  const deadline = started + OPTS.durationMs;
  // Hard bound: whatever happens, print what we have and leave.
  setTimeout(() => finish(true), OPTS.durationMs + 20_000);

  // Anything the libraries let escape (e.g. a failed eth_subscribe inside ethers'
  // event machinery) is counted rather than crashing the run.
  process.on('unhandledRejection', (e) => recordWsError('unhandled rejection', e));
  process.on('uncaughtException', (e) => recordWsError('uncaught exception', e));

  const chainId = OPTS.chainId ?? (await bootstrapChainId(deadline));
  if (chainId === null) return; // endpoint never answered eth_chainId; errors already counted

  const a = await (OPTS.client === 'viem' ? makeViem : makeEthers)(OPTS, chainId, KEY);

  const onWsError = (what) => (e) => recordWsError(what, e);
  const subs = [
    withTimeout(
      a.subscribeHeads((n) => stats.heads.push(n), onWsError('newHeads')),
      OPTS.requestTimeoutMs,
      'eth_subscribe newHeads',
    ).catch(onWsError('subscribe newHeads')),
  ];
  if (OPTS.logAddress !== null) {
    subs.push(
      withTimeout(
        a.subscribeLogs(OPTS.logAddress, OPTS.logTopic, (l) => stats.logs.push(l), onWsError('logs')),
        OPTS.requestTimeoutMs,
        'eth_subscribe logs',
      ).catch(onWsError('subscribe logs')),
    );
  }

  const hashes = [];
  await Promise.all([readLoop(a, deadline), txLoop(a, deadline, hashes), ...subs]);
  await waitReceipts(a, hashes);

  closing = true;
  await withTimeout(a.close(), 3000, 'close').catch(() => {});
}

main()
  .catch((e) => recordError('client', e))
  .finally(() => finish(false));
