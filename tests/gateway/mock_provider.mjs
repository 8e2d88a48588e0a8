#!/usr/bin/env node
// Mock LLM provider for the Gatehouse gateway tests: speaks the Anthropic Messages and the OpenAI
// Chat Completions / Responses wire formats (JSON and SSE), checks the provider key, records every
// request, and lets the request pick a scenario. Node.js >= 20, standard library only.
// Behaviour, scenarios and the token formula are documented in README.md beside this file.

import http from 'node:http';
import https from 'node:https';
import { readFile, writeFile, rename } from 'node:fs/promises';
import { createHash } from 'node:crypto';
import { parseArgs } from 'node:util';

const USAGE = `usage: node mock_provider.mjs --port P [--port-file F] [--tls-cert F --tls-key F]
         --anthropic-key K --openai-key K [--provider both|anthropic|openai]
         [--max-records N] [--verbose]
Keys may also come from MOCK_ANTHROPIC_KEY / MOCK_OPENAI_KEY. Binds 127.0.0.1 only.`;

// ---------------------------------------------------------------------------------------------
// Command line

function parseCli() {
  let parsed;
  try {
    parsed = parseArgs({
      options: {
        port: { type: 'string' },
        'port-file': { type: 'string' },
        'tls-cert': { type: 'string' },
        'tls-key': { type: 'string' },
        'anthropic-key': { type: 'string' },
        'openai-key': { type: 'string' },
        provider: { type: 'string', default: 'both' },
        'max-records': { type: 'string', default: '5000' },
        verbose: { type: 'boolean', default: false },
        help: { type: 'boolean', default: false },
      },
      strict: true,
    }).values;
  } catch (e) {
    die(`${e.message}\n${USAGE}`);
  }
  if (parsed.help) {
    process.stdout.write(`${USAGE}\n`);
    process.exit(0);
  }
  const opts = {
    port: Number(parsed.port ?? NaN),
    portFile: parsed['port-file'] ?? null,
    tlsCert: parsed['tls-cert'] ?? null,
    tlsKey: parsed['tls-key'] ?? null,
    anthropicKey: parsed['anthropic-key'] ?? process.env.MOCK_ANTHROPIC_KEY ?? null,
    openaiKey: parsed['openai-key'] ?? process.env.MOCK_OPENAI_KEY ?? null,
    provider: parsed.provider,
    maxRecords: Number(parsed['max-records']),
    verbose: parsed.verbose,
  };
  if (!Number.isInteger(opts.port) || opts.port < 0 || opts.port > 65535) die(`--port is required (0 picks a free port)\n${USAGE}`);
  if (!['both', 'anthropic', 'openai'].includes(opts.provider)) die(`--provider must be both, anthropic or openai`);
  if (!Number.isInteger(opts.maxRecords) || opts.maxRecords < 0) die('--max-records must be a non-negative integer');
  if (Boolean(opts.tlsCert) !== Boolean(opts.tlsKey)) die('--tls-cert and --tls-key go together');
  if (opts.provider !== 'openai' && !opts.anthropicKey) die('--anthropic-key is required');
  if (opts.provider !== 'anthropic' && !opts.openaiKey) die('--openai-key is required');
  return opts;
}

function die(msg) {
  process.stderr.write(`mock_provider: ${msg}\n`);
  process.exit(2);
}

// ---------------------------------------------------------------------------------------------
// Small helpers

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const nowSec = () => Math.floor(Date.now() / 1000);
const utf8Len = (s) => Buffer.byteLength(s, 'utf8');
const tokensOf = (bytes) => Math.ceil(bytes / 4);

const B62 = '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz';
// Deterministic, real-looking identifiers: prefix + base62 of a hash of (kind, counter).
let idCounter = 0;
function makeId(prefix, len = 24) {
  const h = createHash('sha512').update(`${prefix}:${++idCounter}`).digest();
  let s = '';
  for (let i = 0; i < len; i++) s += B62[h[i % h.length] % 62];
  return prefix + s;
}

// Split a string into `n` roughly equal pieces on code-point boundaries (never inside a
// surrogate pair, so each piece is valid UTF-8 on its own).
function splitEven(str, n) {
  const cps = Array.from(str);
  if (cps.length === 0) return [];
  const parts = Math.max(1, Math.min(n, cps.length));
  const size = Math.ceil(cps.length / parts);
  const out = [];
  for (let i = 0; i < cps.length; i += size) out.push(cps.slice(i, i + size).join(''));
  return out;
}

// Text deltas: one or two words per delta (whitespace stays attached to the preceding word).
function splitWords(text) {
  const words = text.match(/\S+\s*|\s+/g) ?? [];
  const out = [];
  for (let i = 0; i < words.length; i += 2) out.push(words.slice(i, i + 2).join(''));
  return out;
}

// ---------------------------------------------------------------------------------------------
// Scenario directives: [[mock:NAME ARGS]] in the last user message, or the x-mock-scenario header.

// Returns the index just past the closing "]]" of a directive starting at `start` (just after
// "[[mock:"), or -1. Quotes and JSON brackets inside the directive are skipped over.
function findDirectiveEnd(text, start) {
  let depth = 0;
  let inStr = false;
  for (let i = start; i < text.length; i++) {
    const c = text[i];
    if (inStr) {
      if (c === '\\') i++;
      else if (c === '"') inStr = false;
      continue;
    }
    if (c === '"') inStr = true;
    else if (c === '{' || c === '[') depth++;
    else if ((c === '}' || c === ']') && depth > 0) depth--;
    else if (c === ']' && text[i + 1] === ']') return i + 2;
  }
  return -1;
}

// Tokens of one directive body: bare words, "JSON strings", {JSON objects} and [JSON arrays].
function tokenize(body) {
  const toks = [];
  let i = 0;
  while (i < body.length) {
    const c = body[i];
    if (/\s/.test(c)) { i++; continue; }
    if (c === '"') {
      let j = i + 1;
      while (j < body.length && body[j] !== '"') j += body[j] === '\\' ? 2 : 1;
      const raw = body.slice(i, j + 1);
      try { toks.push({ kind: 'string', value: JSON.parse(raw) }); } catch { toks.push({ kind: 'word', value: raw }); }
      i = j + 1;
      continue;
    }
    if (c === '{' || c === '[') {
      let depth = 0; let inStr = false; let j = i;
      for (; j < body.length; j++) {
        const d = body[j];
        if (inStr) { if (d === '\\') j++; else if (d === '"') inStr = false; continue; }
        if (d === '"') inStr = true;
        else if (d === '{' || d === '[') depth++;
        else if (d === '}' || d === ']') { depth--; if (depth === 0) break; }
      }
      const raw = body.slice(i, j + 1);
      try { toks.push({ kind: 'json', value: JSON.parse(raw) }); } catch { toks.push({ kind: 'word', value: raw }); }
      i = j + 1;
      continue;
    }
    let j = i;
    while (j < body.length && !/\s/.test(body[j])) j++;
    toks.push({ kind: 'word', value: body.slice(i, j) });
    i = j;
  }
  return toks;
}

function emptyScenario() {
  return {
    tools: [],          // [{name, input}]
    localShell: [],     // [argv]
    customTools: [],    // [{name, input}]
    text: null,
    thinking: null,     // null | true | string
    slowMs: 0,
    delayMs: 0,
    abortAfter: null,
    errorAfter: null,
    errorType: null,
    status: null,
    tokens: {},
    long: null,
    stop: null,
    unknown: [],
  };
}

function applyDirective(sc, body) {
  const toks = tokenize(body.trim());
  if (toks.length === 0) return;
  const name = String(toks[0].value).toLowerCase().replace(/_/g, '-');
  const args = toks.slice(1);
  const num = (k, dflt = 0) => {
    const v = Number(args[k]?.value);
    return Number.isFinite(v) ? v : dflt;
  };
  switch (name) {
    case 'tool-use':
    case 'tool': {
      if (!args[0]) break;
      const a = args[1];
      let input = {};
      if (a?.kind === 'json' && a.value && typeof a.value === 'object' && !Array.isArray(a.value)) input = a.value;
      else if (a) input = { command: a.value };
      sc.tools.push({ name: String(args[0].value), input });
      break;
    }
    case 'local-shell': {
      const a = args[0];
      let argv = ['bash', '-lc', 'true'];
      if (a?.kind === 'json' && Array.isArray(a.value)) argv = a.value.map(String);
      else if (a) argv = ['bash', '-lc', String(a.value)];
      sc.localShell.push(argv);
      break;
    }
    case 'custom-tool':
      if (args[0]) sc.customTools.push({ name: String(args[0].value), input: args[1] ? String(args[1].value) : '' });
      break;
    case 'text':
      sc.text = args.length ? args.map((t) => (typeof t.value === 'string' ? t.value : JSON.stringify(t.value))).join(' ') : '';
      break;
    case 'thinking':
      sc.thinking = args[0] ? String(args[0].value) : true;
      break;
    case 'slow': sc.slowMs = Math.max(0, num(0)); break;
    case 'delay': sc.delayMs = Math.max(0, num(0)); break;
    case 'abort-after': sc.abortAfter = Math.max(0, Math.floor(num(0))); break;
    case 'error-after':
      sc.errorAfter = Math.max(0, Math.floor(num(0)));
      sc.errorType = args[1] ? String(args[1].value) : null;
      break;
    case 'status': sc.status = Math.floor(num(0, 500)); sc.errorType = args[1] ? String(args[1].value) : sc.errorType; break;
    case 'long': sc.long = Math.max(1, Math.floor(num(0, 100))); break;
    case 'stop': if (args[0]) sc.stop = String(args[0].value); break;
    case 'tokens':
      for (const t of args) {
        const m = /^([a-z0-9_]+)=(\d+)$/i.exec(String(t.value));
        if (!m) continue;
        const key = { in: 'in', input: 'in', out: 'out', output: 'out', cache_read: 'cacheRead', cache_write_5m: 'cw5',
          cache_write_1h: 'cw1', cache_write: 'cw5', reasoning: 'reasoning', thinking: 'reasoning' }[m[1].toLowerCase()];
        if (key) sc.tokens[key] = Number(m[2]);
      }
      break;
    default:
      sc.unknown.push(name);
  }
}

// Parses every [[mock:...]] directive in `text` into `sc`; returns the text with them removed.
function parseDirectivesInText(sc, text) {
  let out = '';
  let pos = 0;
  for (;;) {
    const at = text.indexOf('[[mock:', pos);
    if (at < 0) break;
    const end = findDirectiveEnd(text, at + 7);
    if (end < 0) break;
    out += text.slice(pos, at);
    applyDirective(sc, text.slice(at + 7, end - 2));
    pos = end;
  }
  return out + text.slice(pos);
}

function parseScenarioHeader(sc, value) {
  if (!value) return;
  if (value.includes('[[mock:')) parseDirectivesInText(sc, value);
  else for (const part of value.split(';')) applyDirective(sc, part);
}

// Text of the last message, when that message is the user's (text parts only; tool results
// are ignored so an agent loop ends after one tool call).
function lastUserText(kind, body) {
  const textOf = (content, types) => {
    if (typeof content === 'string') return content;
    if (!Array.isArray(content)) return '';
    return content.filter((p) => p && types.includes(p.type) && typeof p.text === 'string').map((p) => p.text).join('\n');
  };
  if (kind === 'anthropic') {
    const msgs = Array.isArray(body?.messages) ? body.messages : [];
    const last = msgs[msgs.length - 1];
    return last?.role === 'user' ? textOf(last.content, ['text']) : '';
  }
  if (kind === 'chat') {
    const msgs = Array.isArray(body?.messages) ? body.messages : [];
    const last = msgs[msgs.length - 1];
    return last?.role === 'user' ? textOf(last.content, ['text']) : '';
  }
  // responses
  const input = body?.input;
  if (typeof input === 'string') return input;
  if (!Array.isArray(input)) return '';
  const last = input[input.length - 1];
  if (last && last.role === 'user' && (last.type === undefined || last.type === 'message')) {
    return textOf(last.content, ['input_text', 'text']);
  }
  return '';
}

function scenarioFor(kind, body, headers) {
  const sc = emptyScenario();
  const stripped = parseDirectivesInText(sc, lastUserText(kind, body));
  parseScenarioHeader(sc, headers['x-mock-scenario']);
  sc.prompt = stripped.replace(/\s+/g, ' ').trim();
  return sc;
}

// ---------------------------------------------------------------------------------------------
// Response plan: what the model "says", independent of the wire format.

function makePlan(kind, body, bodyBytes, sc) {
  const plan = { thinking: null, text: null, textPieces: [], tools: [], localShell: [], customTools: [] };
  if (kind === 'anthropic') {
    const t = body?.thinking?.type;
    if (sc.thinking !== null || t === 'enabled' || t === 'adaptive') {
      plan.thinking = typeof sc.thinking === 'string' ? sc.thinking : `Thinking about: ${sc.prompt.slice(0, 100) || '(empty)'}`;
      plan.signature = createHash('sha256').update(plan.thinking).digest('base64');
    }
  }
  const hasCalls = sc.tools.length > 0 || (kind === 'responses' && (sc.localShell.length > 0 || sc.customTools.length > 0));
  if (sc.long !== null) {
    plan.textPieces = Array.from({ length: sc.long }, (_, i) => `w${i} `);
    plan.text = plan.textPieces.join('');
  } else if (sc.text !== null) {
    plan.text = sc.text;
    plan.textPieces = splitWords(sc.text);
  } else if (!hasCalls) {
    plan.text = `mock: ${sc.prompt.slice(0, 200) || '(empty)'}`;
    plan.textPieces = splitWords(plan.text);
  }
  for (const t of sc.tools) {
    const json = JSON.stringify(t.input);
    plan.tools.push({ name: t.name, input: t.input, json, pieces: splitEven(json, 5) });
  }
  if (kind === 'responses') {
    plan.localShell = sc.localShell.map((argv) => ({ argv }));
    plan.customTools = sc.customTools.map((c) => ({ ...c, pieces: splitEven(c.input, 4) }));
  }

  // Token accounting (see README "Token formula").
  let outBytes = plan.text ? utf8Len(plan.text) : 0;
  for (const t of plan.tools) outBytes += utf8Len(t.json);
  for (const c of plan.customTools) outBytes += utf8Len(c.input);
  for (const l of plan.localShell) outBytes += utf8Len(JSON.stringify(l.argv));
  const tk = sc.tokens;
  const reasoning = tk.reasoning ?? (plan.thinking ? tokensOf(utf8Len(plan.thinking)) : 0);
  plan.usage = {
    in: tk.in ?? tokensOf(bodyBytes),
    cacheRead: tk.cacheRead ?? 0,
    cw5: tk.cw5 ?? 0,
    cw1: tk.cw1 ?? 0,
    out: tk.out ?? Math.max(1, tokensOf(outBytes) + reasoning),
    reasoning,
    reasoningExplicit: tk.reasoning !== undefined,
  };
  const called = plan.tools.length + plan.localShell.length + plan.customTools.length > 0;
  plan.stop = sc.stop ?? (called ? 'tool_use' : 'end_turn');
  return plan;
}

// ---------------------------------------------------------------------------------------------
// Provider error shapes

const ANTHROPIC_ERROR_TYPES = {
  400: 'invalid_request_error', 401: 'authentication_error', 402: 'billing_error', 403: 'permission_error',
  404: 'not_found_error', 413: 'request_too_large', 429: 'rate_limit_error', 500: 'api_error',
  504: 'timeout_error', 529: 'overloaded_error',
};
const ANTHROPIC_ERROR_MESSAGES = {
  invalid_request_error: 'Invalid request', authentication_error: 'invalid x-api-key', billing_error: 'Billing error',
  permission_error: 'Your API key does not have permission to use the specified resource.',
  not_found_error: 'Not found', request_too_large: 'Request exceeds the maximum allowed number of bytes.',
  rate_limit_error: 'Number of request tokens has exceeded your per-minute rate limit', api_error: 'Internal server error',
  timeout_error: 'Request timed out', overloaded_error: 'Overloaded',
};

function anthropicErrorBody(status, type, message) {
  const t = type ?? ANTHROPIC_ERROR_TYPES[status] ?? 'api_error';
  return { type: 'error', error: { type: t, message: message ?? ANTHROPIC_ERROR_MESSAGES[t] ?? 'Error' } };
}

function openaiErrorBody(status, type, message, code = null) {
  let t = type;
  let m = message;
  let c = code;
  if (!t) {
    if (status === 429) { t = 'requests'; c = c ?? 'rate_limit_exceeded'; m = m ?? 'Rate limit reached for requests'; }
    else if (status >= 500) { t = 'server_error'; m = m ?? 'The server had an error while processing your request. Sorry about that!'; }
    else if (status === 404) { t = 'invalid_request_error'; c = c ?? 'model_not_found'; m = m ?? 'The model does not exist or you do not have access to it.'; }
    else t = 'invalid_request_error';
  }
  return { error: { message: m ?? 'Error', type: t, param: null, code: c } };
}

function maskKey(k) {
  if (k.length <= 8) return k;
  return `${k.slice(0, 3)}${'*'.repeat(Math.min(k.length - 7, 20))}${k.slice(-4)}`;
}

// ---------------------------------------------------------------------------------------------
// Request records and connections

class Recorder {
  constructor(max) {
    this.max = max;
    this.records = [];
    this.nextId = 1;
  }
  add(rec) {
    rec.seq = this.nextId++;
    if (this.max === 0) return rec;
    this.records.push(rec);
    if (this.records.length > this.max) this.records.splice(0, this.records.length - this.max);
    return rec;
  }
  reset() { this.records = []; }
  toJSON(sinceSeq, limit) {
    let recs = this.records.filter((r) => r.seq > sinceSeq);
    if (limit > 0) recs = recs.slice(-limit);
    return recs.map((r) => ({
      seq: r.seq,
      connection: r.conn.id,
      provider: r.provider,
      request_id: r.requestId,
      method: r.method,
      path: r.path,
      headers: r.headers,
      raw_headers: r.rawHeaders,
      body: r.body,
      body_bytes: r.bodyBytes,
      scenario: r.scenario,
      status: r.status,
      stream: r.stream,
      events: r.events,
      received_at: r.receivedAt,
      finished_at: r.finishedAt,
      interrupted: r.interrupted,
      response_sha256: r.responseSha256 ?? null,
      closed_at: r.conn.closedAt,
      closed_by: r.conn.closedAt === null ? null : r.conn.closedBy,
    }));
  }
}

let connCounter = 0;
const connState = new WeakMap();
const liveSockets = new Set();

function trackSocket(sock) {
  let st = connState.get(sock);
  if (st) return st;
  st = { id: ++connCounter, closedAt: null, closedBy: null, peerEnded: false, peerError: false, destroyedByMock: false };
  connState.set(sock, st);
  liveSockets.add(sock);
  const markClosed = (by) => {
    if (st.closedAt === null) { st.closedAt = Date.now(); st.closedBy = by; }
  };
  sock.on('end', () => { st.peerEnded = true; markClosed('client'); });
  sock.on('error', (e) => {
    if (['ECONNRESET', 'EPIPE', 'ECONNABORTED'].includes(e.code)) st.peerError = true;
  });
  sock.on('close', () => {
    liveSockets.delete(sock);
    markClosed(st.destroyedByMock ? 'mock' : st.peerEnded || st.peerError ? 'client' : 'server');
  });
  return st;
}

// ---------------------------------------------------------------------------------------------
// Output helpers

function sendJson(ctx, status, obj, extraHeaders = {}) {
  const body = JSON.stringify(obj);
  ctx.rec.status = status;
  ctx.rec.responseSha256 = createHash('sha256').update(body).digest('hex');
  ctx.res.writeHead(status, {
    'content-type': 'application/json',
    'content-length': Buffer.byteLength(body),
    ...ctx.idHeaders,
    ...extraHeaders,
  });
  ctx.res.end(body);
}

function sseFrame(event, data) {
  return event ? `event: ${event}\ndata: ${JSON.stringify(data)}\n\n` : `data: ${typeof data === 'string' ? data : JSON.stringify(data)}\n\n`;
}

function destroyByMock(ctx) {
  const st = connState.get(ctx.res.socket ?? ctx.req.socket);
  if (st) st.destroyedByMock = true;
  (ctx.res.socket ?? ctx.req.socket)?.destroy();
}

// Writes `frames` (strings) as an SSE response, honouring slow / abort-after / error-after.
async function sendStream(ctx, frames, errorFrame) {
  const { res, sc, rec } = ctx;
  rec.status = 200;
  rec.stream = true;
  res.writeHead(200, {
    'content-type': 'text/event-stream; charset=utf-8',
    'cache-control': 'no-cache',
    'x-accel-buffering': 'no',
    ...ctx.idHeaders,
  });
  const paced = sc.slowMs > 0;
  if (paced) res.flushHeaders();
  else res.cork();
  let n = 0;
  const hash = createHash('sha256');
  let lastWrite = Promise.resolve();
  const abortNow = async () => {
    if (!paced) res.uncork();
    await lastWrite;
    destroyByMock(ctx);
  };
  for (const f of frames) {
    if (ctx.closed) return;
    if (sc.abortAfter !== null && n >= sc.abortAfter) return abortNow();
    if (sc.errorAfter !== null && n >= sc.errorAfter) {
      res.write(errorFrame);
      rec.events = ++n;
      if (!paced) res.uncork();
      res.end();
      return;
    }
    let ok;
    hash.update(f);
    lastWrite = new Promise((resolve) => { ok = res.write(f, () => resolve()); });
    rec.events = ++n;
    if (paced) {
      await sleep(sc.slowMs);
    } else if (!ok) {
      res.uncork();
      await new Promise((resolve) => {
        const done = () => { res.off('drain', done); res.off('close', done); resolve(); };
        res.on('drain', done);
        res.on('close', done);
      });
      if (ctx.closed) return;
      res.cork();
    }
  }
  if (ctx.closed) return;
  if (sc.abortAfter !== null && n >= sc.abortAfter) return abortNow();
  rec.responseSha256 = hash.digest('hex');
  if (!paced) res.uncork();
  res.end();
}

// ---------------------------------------------------------------------------------------------
// Anthropic

const ANTHROPIC_MODELS = [
  { id: 'claude-opus-5', display_name: 'Claude Opus 5', created_at: '2026-06-01T00:00:00Z' },
  { id: 'claude-sonnet-5', display_name: 'Claude Sonnet 5', created_at: '2026-06-01T00:00:00Z' },
  { id: 'claude-sonnet-4-6', display_name: 'Claude Sonnet 4.6', created_at: '2026-02-17T00:00:00Z' },
  { id: 'claude-haiku-4-5-20251001', display_name: 'Claude Haiku 4.5', created_at: '2025-10-01T00:00:00Z' },
];

function anthropicUsage(u, thinking) {
  const usage = {
    input_tokens: u.in,
    cache_creation_input_tokens: u.cw5 + u.cw1,
    cache_read_input_tokens: u.cacheRead,
    cache_creation: { ephemeral_5m_input_tokens: u.cw5, ephemeral_1h_input_tokens: u.cw1 },
    output_tokens: u.out,
    service_tier: 'standard',
  };
  if (thinking || u.reasoningExplicit) usage.output_tokens_details = { thinking_tokens: u.reasoning };
  return usage;
}

function anthropicContent(plan, ids) {
  const content = [];
  if (plan.thinking) content.push({ type: 'thinking', thinking: plan.thinking, signature: plan.signature });
  if (plan.text !== null) content.push({ type: 'text', text: plan.text });
  plan.tools.forEach((t, i) => content.push({ type: 'tool_use', id: ids[i], name: t.name, input: t.input }));
  return content;
}

function* anthropicFrames(plan, model, msgId, toolIds) {
  const u = plan.usage;
  const start = anthropicUsage({ ...u, out: 1 }, false);
  delete start.output_tokens_details;
  yield sseFrame('message_start', {
    type: 'message_start',
    message: { id: msgId, type: 'message', role: 'assistant', model, content: [], stop_reason: null, stop_sequence: null, usage: start },
  });
  let index = 0;
  let pinged = false;
  function* block(contentBlock, deltas) {
    yield sseFrame('content_block_start', { type: 'content_block_start', index, content_block: contentBlock });
    if (!pinged) { pinged = true; yield sseFrame('ping', { type: 'ping' }); }
    for (const d of deltas) yield sseFrame('content_block_delta', { type: 'content_block_delta', index, delta: d });
    yield sseFrame('content_block_stop', { type: 'content_block_stop', index });
    index++;
  }
  if (plan.thinking) {
    yield* block({ type: 'thinking', thinking: '', signature: '' }, [
      ...splitWords(plan.thinking).map((t) => ({ type: 'thinking_delta', thinking: t })),
      { type: 'signature_delta', signature: plan.signature },
    ]);
  }
  if (plan.text !== null) {
    yield* block({ type: 'text', text: '' }, plan.textPieces.map((t) => ({ type: 'text_delta', text: t })));
  }
  for (let i = 0; i < plan.tools.length; i++) {
    const t = plan.tools[i];
    yield* block({ type: 'tool_use', id: toolIds[i], name: t.name, input: {} },
      ['', ...t.pieces].map((p) => ({ type: 'input_json_delta', partial_json: p })));
  }
  const final = anthropicUsage(u, Boolean(plan.thinking));
  const deltaUsage = {
    input_tokens: final.input_tokens,
    cache_creation_input_tokens: final.cache_creation_input_tokens,
    cache_read_input_tokens: final.cache_read_input_tokens,
    output_tokens: final.output_tokens,
  };
  if (final.output_tokens_details) deltaUsage.output_tokens_details = final.output_tokens_details;
  yield sseFrame('message_delta', { type: 'message_delta', delta: { stop_reason: plan.stop, stop_sequence: null }, usage: deltaUsage });
  yield sseFrame('message_stop', { type: 'message_stop' });
}

// GET routes have no body: only the x-mock-scenario header can select `status`.
function headerStatus(req) {
  const sc = emptyScenario();
  parseScenarioHeader(sc, req.headers['x-mock-scenario']);
  return sc;
}

async function handleAnthropic(ctx, pathname) {
  const { req, rec } = ctx;
  if (req.method === 'GET' && pathname.startsWith('/v1/models')) {
    const sc = headerStatus(req);
    if (sc.status !== null) return sendJson(ctx, sc.status, anthropicErrorBody(sc.status, sc.errorType));
  }
  if (req.method === 'GET' && pathname === '/v1/models') {
    const data = ANTHROPIC_MODELS.map((m) => ({ type: 'model', ...m }));
    return sendJson(ctx, 200, { data, has_more: false, first_id: data[0].id, last_id: data[data.length - 1].id });
  }
  if (req.method === 'GET' && pathname.startsWith('/v1/models/')) {
    const id = decodeURIComponent(pathname.slice('/v1/models/'.length));
    const m = ANTHROPIC_MODELS.find((x) => x.id === id);
    if (!m) return sendJson(ctx, 404, anthropicErrorBody(404, 'not_found_error', `model: ${id}`));
    return sendJson(ctx, 200, { type: 'model', ...m });
  }
  const isMessages = pathname === '/v1/messages';
  const isCount = pathname === '/v1/messages/count_tokens';
  if (!isMessages && !isCount) return sendJson(ctx, 404, anthropicErrorBody(404, 'not_found_error', 'Not Found'));
  if (req.method !== 'POST') return sendJson(ctx, 405, anthropicErrorBody(405, 'invalid_request_error', `Method Not Allowed`));
  if (!req.headers['anthropic-version']) {
    return sendJson(ctx, 400, anthropicErrorBody(400, 'invalid_request_error', 'anthropic-version: header is required'));
  }
  const body = ctx.json;
  if (body === undefined || body === null || typeof body !== 'object' || Array.isArray(body)) {
    return sendJson(ctx, 400, anthropicErrorBody(400, 'invalid_request_error', 'There was an error parsing the body of your request'));
  }
  for (const field of isMessages ? ['model', 'messages', 'max_tokens'] : ['model', 'messages']) {
    if (body[field] === undefined) return sendJson(ctx, 400, anthropicErrorBody(400, 'invalid_request_error', `${field}: Field required`));
  }
  const sc = scenarioFor('anthropic', body, req.headers);
  ctx.sc = sc;
  rec.scenario = scenarioSummary(sc);
  if (sc.delayMs) { await sleep(sc.delayMs); if (ctx.closed) return; }
  if (sc.status !== null) {
    const extra = sc.status === 429 || sc.status === 529 ? { 'retry-after': '1' } : {};
    if (sc.abortAfter !== null) return destroyByMock(ctx);
    return sendJson(ctx, sc.status, anthropicErrorBody(sc.status, sc.errorType), extra);
  }
  const plan = makePlan('anthropic', body, ctx.bodyBytes, sc);
  if (isCount) {
    const u = plan.usage;
    return sendJson(ctx, 200, { input_tokens: u.in + u.cacheRead + u.cw5 + u.cw1 });
  }
  const msgId = makeId('msg_01');
  const toolIds = plan.tools.map(() => makeId('toolu_01'));
  const model = String(body.model);
  if (body.stream === true) {
    const err = anthropicErrorBody(529, sc.errorType ?? 'overloaded_error');
    return sendStream(ctx, anthropicFrames(plan, model, msgId, toolIds), sseFrame('error', err));
  }
  if (sc.slowMs) { await sleep(sc.slowMs); if (ctx.closed) return; }
  const message = {
    id: msgId, type: 'message', role: 'assistant', model, content: anthropicContent(plan, toolIds),
    stop_reason: plan.stop, stop_sequence: null, usage: anthropicUsage(plan.usage, Boolean(plan.thinking)),
  };
  if (sc.abortAfter !== null) return sendTruncated(ctx, message, sc.abortAfter);
  return sendJson(ctx, 200, message);
}

// Non-streaming abort-after N: headers and the first N bytes of the body, then the connection is
// destroyed (N = 0: no response at all).
async function sendTruncated(ctx, obj, n) {
  if (n === 0) return destroyByMock(ctx);
  const body = Buffer.from(JSON.stringify(obj));
  ctx.rec.status = 200;
  ctx.res.writeHead(200, { 'content-type': 'application/json', 'content-length': body.length, ...ctx.idHeaders });
  await new Promise((r) => ctx.res.write(body.subarray(0, Math.min(n, body.length - 1)), () => r()));
  destroyByMock(ctx);
}

// ---------------------------------------------------------------------------------------------
// OpenAI Chat Completions

const OPENAI_MODELS = [
  { id: 'gpt-5.4', created: 1772668800, owned_by: 'system' },
  { id: 'gpt-5.4-mini', created: 1773705600, owned_by: 'system' },
  { id: 'gpt-5.1-codex', created: 1763020800, owned_by: 'system' },
  { id: 'gpt-5', created: 1754425777, owned_by: 'system' },
  { id: 'gpt-4.1', created: 1744316542, owned_by: 'system' },
];

function chatUsage(u) {
  const prompt = u.in + u.cacheRead;
  return {
    prompt_tokens: prompt,
    completion_tokens: u.out,
    total_tokens: prompt + u.out,
    prompt_tokens_details: { cached_tokens: u.cacheRead, audio_tokens: 0 },
    completion_tokens_details: { reasoning_tokens: u.reasoning, audio_tokens: 0, accepted_prediction_tokens: 0, rejected_prediction_tokens: 0 },
  };
}

function chatFinish(stop) {
  return { end_turn: 'stop', tool_use: 'tool_calls', max_tokens: 'length', stop_sequence: 'stop', refusal: 'content_filter' }[stop] ?? stop;
}

function* chatFrames(plan, model, id, created, callIds, includeUsage) {
  const base = { id, object: 'chat.completion.chunk', created, model, service_tier: 'default', system_fingerprint: 'fp_mock' };
  const chunk = (delta, finish = null) => {
    const c = { ...base, choices: [{ index: 0, delta, logprobs: null, finish_reason: finish }] };
    if (includeUsage) c.usage = null;
    return sseFrame(null, c);
  };
  const hasText = plan.text !== null;
  yield chunk(hasText ? { role: 'assistant', content: '', refusal: null } : { role: 'assistant', content: null, refusal: null });
  if (hasText) for (const p of plan.textPieces) yield chunk({ content: p });
  for (let i = 0; i < plan.tools.length; i++) {
    const t = plan.tools[i];
    yield chunk({ tool_calls: [{ index: i, id: callIds[i], type: 'function', function: { name: t.name, arguments: '' } }] });
    for (const p of t.pieces) yield chunk({ tool_calls: [{ index: i, function: { arguments: p } }] });
  }
  yield chunk({}, chatFinish(plan.stop));
  if (includeUsage) yield sseFrame(null, { ...base, choices: [], usage: chatUsage(plan.usage) });
  yield sseFrame(null, '[DONE]');
}

async function handleChat(ctx) {
  const { req, rec } = ctx;
  const body = ctx.json;
  if (req.method !== 'POST') return sendJson(ctx, 405, openaiErrorBody(405, 'invalid_request_error', `Invalid method for URL (${req.method} /v1/chat/completions)`));
  if (!body || typeof body !== 'object' || Array.isArray(body)) return sendJson(ctx, 400, openaiJsonError());
  if (!body.model) return sendJson(ctx, 400, openaiErrorBody(400, 'invalid_request_error', 'you must provide a model parameter'));
  if (!Array.isArray(body.messages)) return sendJson(ctx, 400, openaiErrorBody(400, 'invalid_request_error', "Missing required parameter: 'messages'."));
  const sc = scenarioFor('chat', body, req.headers);
  ctx.sc = sc;
  rec.scenario = scenarioSummary(sc);
  if (sc.delayMs) { await sleep(sc.delayMs); if (ctx.closed) return; }
  if (sc.status !== null) {
    if (sc.abortAfter !== null) return destroyByMock(ctx);
    return sendJson(ctx, sc.status, openaiErrorBody(sc.status, sc.errorType), sc.status === 429 ? { 'retry-after': '1' } : {});
  }
  const plan = makePlan('chat', body, ctx.bodyBytes, sc);
  const id = makeId('chatcmpl-', 29);
  const created = nowSec();
  const callIds = plan.tools.map(() => makeId('call_', 24));
  const model = String(body.model);
  if (body.stream === true) {
    const includeUsage = body.stream_options?.include_usage === true;
    const err = openaiErrorBody(500, sc.errorType ?? 'server_error', 'The server had an error while processing your request. Sorry about that!');
    return sendStream(ctx, chatFrames(plan, model, id, created, callIds, includeUsage), sseFrame(null, err));
  }
  if (sc.slowMs) { await sleep(sc.slowMs); if (ctx.closed) return; }
  const message = { role: 'assistant', content: plan.text, refusal: null, annotations: [] };
  if (plan.tools.length) {
    message.tool_calls = plan.tools.map((t, i) => ({ id: callIds[i], type: 'function', function: { name: t.name, arguments: t.json } }));
  }
  const out = {
    id, object: 'chat.completion', created, model,
    choices: [{ index: 0, message, logprobs: null, finish_reason: chatFinish(plan.stop) }],
    usage: chatUsage(plan.usage), service_tier: 'default', system_fingerprint: 'fp_mock',
  };
  if (sc.abortAfter !== null) return sendTruncated(ctx, out, sc.abortAfter);
  return sendJson(ctx, 200, out);
}

function openaiJsonError() {
  return openaiErrorBody(400, 'invalid_request_error',
    "We could not parse the JSON body of your request. (HINT: This likely means you aren't using your HTTP library correctly. The OpenAI API expects a JSON payload, but what was sent was not valid JSON.)");
}

// ---------------------------------------------------------------------------------------------
// OpenAI Responses

function responsesUsage(u) {
  const input = u.in + u.cacheRead;
  return {
    input_tokens: input,
    input_tokens_details: { cached_tokens: u.cacheRead },
    output_tokens: u.out,
    output_tokens_details: { reasoning_tokens: u.reasoning },
    total_tokens: input + u.out,
  };
}

function responsesItems(plan, ids) {
  // Final (completed) output items; ids are preassigned so the stream and JSON agree.
  const items = [];
  let k = 0;
  if (plan.text !== null) {
    items.push({ id: ids[k++], type: 'message', status: 'completed', role: 'assistant',
      content: [{ type: 'output_text', text: plan.text, annotations: [], logprobs: [] }] });
  }
  for (const t of plan.tools) {
    const [id, callId] = ids[k++];
    items.push({ id, type: 'function_call', status: 'completed', arguments: t.json, call_id: callId, name: t.name });
  }
  for (const c of plan.customTools) {
    const [id, callId] = ids[k++];
    items.push({ id, type: 'custom_tool_call', status: 'completed', call_id: callId, input: c.input, name: c.name });
  }
  for (const l of plan.localShell) {
    const [id, callId] = ids[k++];
    items.push({ id, type: 'local_shell_call', status: 'completed', call_id: callId,
      action: { type: 'exec', command: l.argv, env: {}, timeout_ms: null, user: null, working_directory: null } });
  }
  return items;
}

function responseObject(body, id, createdAt, status, output, usage, incomplete) {
  return {
    id, object: 'response', created_at: createdAt, status, background: false, error: null,
    incomplete_details: incomplete ? { reason: 'max_output_tokens' } : null,
    instructions: body.instructions ?? null, max_output_tokens: body.max_output_tokens ?? null,
    model: String(body.model), output, parallel_tool_calls: body.parallel_tool_calls ?? true,
    previous_response_id: body.previous_response_id ?? null,
    reasoning: { effort: body.reasoning?.effort ?? null, summary: body.reasoning?.summary ?? null },
    service_tier: 'default', store: body.store ?? true, temperature: body.temperature ?? 1,
    text: body.text ?? { format: { type: 'text' } }, tool_choice: body.tool_choice ?? 'auto',
    tools: Array.isArray(body.tools) ? body.tools : [], top_p: body.top_p ?? 1, truncation: body.truncation ?? 'disabled',
    usage, user: body.user ?? null, metadata: body.metadata ?? {},
  };
}

function* responsesFrames(body, plan, id, createdAt, ids, incomplete) {
  let seq = 0;
  const ev = (type, fields) => sseFrame(type, { type, sequence_number: seq++, ...fields });
  const items = responsesItems(plan, ids);
  const initial = responseObject(body, id, createdAt, 'in_progress', [], null, false);
  yield ev('response.created', { response: initial });
  yield ev('response.in_progress', { response: initial });
  for (const [oi, item] of items.entries()) {
    if (item.type === 'message') {
      const text = item.content[0].text;
      yield ev('response.output_item.added', { output_index: oi, item: { ...item, status: 'in_progress', content: [] } });
      const emptyPart = { type: 'output_text', text: '', annotations: [], logprobs: [] };
      yield ev('response.content_part.added', { item_id: item.id, output_index: oi, content_index: 0, part: emptyPart });
      for (const p of plan.textPieces) {
        yield ev('response.output_text.delta', { item_id: item.id, output_index: oi, content_index: 0, delta: p, logprobs: [] });
      }
      yield ev('response.output_text.done', { item_id: item.id, output_index: oi, content_index: 0, text, logprobs: [] });
      yield ev('response.content_part.done', { item_id: item.id, output_index: oi, content_index: 0, part: item.content[0] });
    } else if (item.type === 'function_call') {
      yield ev('response.output_item.added', { output_index: oi, item: { ...item, status: 'in_progress', arguments: '' } });
      for (const p of splitEven(item.arguments, 5)) {
        yield ev('response.function_call_arguments.delta', { item_id: item.id, output_index: oi, delta: p });
      }
      yield ev('response.function_call_arguments.done', { item_id: item.id, output_index: oi, name: item.name, arguments: item.arguments });
    } else if (item.type === 'custom_tool_call') {
      yield ev('response.output_item.added', { output_index: oi, item: { ...item, status: 'in_progress', input: '' } });
      for (const p of splitEven(item.input, 4)) {
        yield ev('response.custom_tool_call_input.delta', { item_id: item.id, output_index: oi, delta: p });
      }
      yield ev('response.custom_tool_call_input.done', { item_id: item.id, output_index: oi, input: item.input });
    } else {
      yield ev('response.output_item.added', { output_index: oi, item: { ...item, status: 'in_progress' } });
    }
    yield ev('response.output_item.done', { output_index: oi, item });
  }
  const final = responseObject(body, id, createdAt, incomplete ? 'incomplete' : 'completed', items, responsesUsage(plan.usage), incomplete);
  yield ev(incomplete ? 'response.incomplete' : 'response.completed', { response: final });
}

async function handleResponses(ctx) {
  const { req, rec } = ctx;
  const body = ctx.json;
  if (req.method !== 'POST') {
    return sendJson(ctx, 405, openaiErrorBody(405, 'invalid_request_error', `Invalid method for URL (${req.method} /v1/responses)`));
  }
  if (!body || typeof body !== 'object' || Array.isArray(body)) return sendJson(ctx, 400, openaiJsonError());
  if (!body.model) return sendJson(ctx, 400, openaiErrorBody(400, 'invalid_request_error', "Missing required parameter: 'model'.", 'missing_required_parameter'));
  const sc = scenarioFor('responses', body, req.headers);
  ctx.sc = sc;
  rec.scenario = scenarioSummary(sc);
  if (sc.delayMs) { await sleep(sc.delayMs); if (ctx.closed) return; }
  if (sc.status !== null) {
    if (sc.abortAfter !== null) return destroyByMock(ctx);
    return sendJson(ctx, sc.status, openaiErrorBody(sc.status, sc.errorType), sc.status === 429 ? { 'retry-after': '1' } : {});
  }
  const plan = makePlan('responses', body, ctx.bodyBytes, sc);
  const id = makeId('resp_', 48);
  const createdAt = nowSec();
  const ids = [];
  if (plan.text !== null) ids.push(makeId('msg_', 48));
  for (let i = 0; i < plan.tools.length; i++) ids.push([makeId('fc_', 48), makeId('call_', 24)]);
  for (let i = 0; i < plan.customTools.length; i++) ids.push([makeId('ctc_', 48), makeId('call_', 24)]);
  for (let i = 0; i < plan.localShell.length; i++) ids.push([makeId('lsh_', 48), makeId('call_', 24)]);
  const incomplete = plan.stop === 'max_tokens' || plan.stop === 'length' || plan.stop === 'max_output_tokens';
  if (body.stream === true) {
    // The sequence number of the error event is not known in advance; the reader only needs a number.
    const err = { type: 'error', code: sc.errorType ?? 'server_error', message: 'The server had an error while processing your request. Sorry about that!', param: null, sequence_number: sc.errorAfter ?? 0 };
    return sendStream(ctx, responsesFrames(body, plan, id, createdAt, ids, incomplete), sseFrame('error', err));
  }
  if (sc.slowMs) { await sleep(sc.slowMs); if (ctx.closed) return; }
  const out = responseObject(body, id, createdAt, incomplete ? 'incomplete' : 'completed', responsesItems(plan, ids), responsesUsage(plan.usage), incomplete);
  if (sc.abortAfter !== null) return sendTruncated(ctx, out, sc.abortAfter);
  return sendJson(ctx, 200, out);
}

async function handleOpenaiModels(ctx, pathname) {
  const data = OPENAI_MODELS.map((m) => ({ id: m.id, object: 'model', created: m.created, owned_by: m.owned_by }));
  if (pathname === '/v1/models') return sendJson(ctx, 200, { object: 'list', data });
  const id = decodeURIComponent(pathname.slice('/v1/models/'.length));
  const m = data.find((x) => x.id === id);
  if (!m) {
    return sendJson(ctx, 404, openaiErrorBody(404, 'invalid_request_error', `The model '${id}' does not exist`, 'model_not_found'));
  }
  return sendJson(ctx, 200, m);
}

function scenarioSummary(sc) {
  const s = {};
  if (sc.tools.length) s.tool_use = sc.tools;
  if (sc.localShell.length) s.local_shell = sc.localShell;
  if (sc.customTools.length) s.custom_tool = sc.customTools;
  for (const [k, name] of [['text', 'text'], ['thinking', 'thinking'], ['status', 'status'], ['long', 'long'], ['stop', 'stop'],
    ['abortAfter', 'abort_after'], ['errorAfter', 'error_after'], ['errorType', 'error_type']]) {
    if (sc[k] !== null) s[name] = sc[k];
  }
  if (sc.slowMs) s.slow = sc.slowMs;
  if (sc.delayMs) s.delay = sc.delayMs;
  if (Object.keys(sc.tokens).length) s.tokens = sc.tokens;
  if (sc.unknown.length) s.unknown = sc.unknown;
  return s;
}

// ---------------------------------------------------------------------------------------------
// Dispatch

function whichProvider(opts, pathname, headers) {
  if (opts.provider !== 'both') return opts.provider;
  if (pathname === '/v1/messages' || pathname.startsWith('/v1/messages/')) return 'anthropic';
  if (pathname === '/v1/chat/completions' || pathname === '/v1/responses' || pathname.startsWith('/v1/responses/')) return 'openai';
  // Shared paths (/v1/models, unknown): the Anthropic SDK always sends anthropic-version.
  if (headers['anthropic-version'] || headers['x-api-key']) return 'anthropic';
  return 'openai';
}

// Anthropic takes the key as x-api-key or (SDK >= 1.0, API version 2026-10-21) as a bearer token.
// Every credential the request carries must be the configured key: a leftover client placeholder
// next to an injected key is rejected, so a gateway that forgets to strip one fails its test.
function authorized(opts, provider, headers) {
  const bearer = headers.authorization === undefined ? undefined : /^Bearer (.*)$/i.exec(headers.authorization)?.[1] ?? null;
  if (provider === 'anthropic') {
    const xKey = headers['x-api-key'];
    if (xKey === undefined && bearer === undefined) return false;
    return (xKey === undefined || xKey === opts.anthropicKey) && (bearer === undefined || bearer === opts.anthropicKey);
  }
  return bearer === opts.openaiKey;
}

function authError(ctx, provider) {
  const h = ctx.req.headers;
  if (provider === 'anthropic') {
    return sendJson(ctx, 401, { type: 'error', error: { type: 'authentication_error', message: 'invalid x-api-key' } });
  }
  const m = /^Bearer (.*)$/i.exec(h.authorization ?? '');
  const message = m
    ? `Incorrect API key provided: ${maskKey(m[1])}. You can find your API key at https://platform.openai.com/account/api-keys.`
    : "You didn't provide an API key. You need to provide your API key in an Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY), or as the password field (with blank username) if you're accessing the API from your browser and are prompted for a username and password. You can obtain an API key from https://platform.openai.com/account/api-keys.";
  return sendJson(ctx, 401, { error: { message, type: 'invalid_request_error', param: null, code: 'invalid_api_key' } });
}

function makeHandler(opts, recorder) {
  return (req, res) => {
    const conn = trackSocket(req.socket);
    const chunks = [];
    let bytes = 0;
    req.on('data', (c) => { chunks.push(c); bytes += c.length; });
    req.on('end', () => {
      const raw = chunks.length === 1 ? chunks[0] : Buffer.concat(chunks, bytes);
      dispatch(opts, recorder, req, res, conn, raw).catch((e) => {
        process.stderr.write(`mock_provider: internal error: ${e.stack ?? e}\n`);
        if (!res.headersSent) { res.writeHead(500, { 'content-type': 'application/json' }); res.end('{"error":"mock internal error"}'); }
        else res.destroy();
      });
    });
  };
}

async function dispatch(opts, recorder, req, res, conn, raw) {
  const url = new URL(req.url, 'http://mock');
  const pathname = url.pathname;

  if (pathname.startsWith('/__mock/')) return control(recorder, req, res, pathname, url);

  const provider = whichProvider(opts, pathname, req.headers);
  const requestId = provider === 'anthropic' ? makeId('req_011C', 20) : makeId('req_', 32).toLowerCase();
  const rec = recorder.add({
    conn, provider, requestId, method: req.method, path: req.url, headers: req.headers,
    rawHeaders: pairs(req.rawHeaders), body: raw.toString('utf8'), bodyBytes: raw.length, scenario: null,
    status: null, stream: false, events: 0, receivedAt: Date.now(), finishedAt: null, interrupted: false,
  });
  const ctx = {
    req, res, rec, sc: null, closed: false, bodyBytes: raw.length,
    idHeaders: provider === 'anthropic' ? { 'request-id': requestId } : { 'x-request-id': requestId, 'openai-processing-ms': '1', 'openai-version': '2020-10-01' },
  };
  res.on('error', () => {}); // writes racing a client disconnect must not crash the mock
  req.on('error', () => {});
  res.on('finish', () => { rec.finishedAt = Date.now(); });
  res.on('close', () => {
    ctx.closed = true;
    if (rec.finishedAt === null) rec.interrupted = true;
  });
  if (opts.verbose) {
    res.on('close', () => process.stderr.write(`mock_provider: ${req.method} ${req.url} -> ${rec.status} (${rec.events} events)\n`));
  }

  if (!authorized(opts, provider, req.headers)) return authError(ctx, provider);

  if (req.method === 'POST') {
    try { ctx.json = JSON.parse(rec.body); } catch { ctx.json = undefined; }
  }

  if (provider === 'anthropic') return handleAnthropic(ctx, pathname);
  if (pathname === '/v1/chat/completions') return handleChat(ctx);
  if (pathname === '/v1/responses') return handleResponses(ctx);
  if (req.method === 'GET' && (pathname === '/v1/models' || pathname.startsWith('/v1/models/'))) {
    const sc = headerStatus(req);
    if (sc.status !== null) return sendJson(ctx, sc.status, openaiErrorBody(sc.status, sc.errorType));
    return handleOpenaiModels(ctx, pathname);
  }
  return sendJson(ctx, 404, openaiErrorBody(404, 'invalid_request_error', `Invalid URL (${req.method} ${pathname})`, null));
}

function pairs(rawHeaders) {
  const out = [];
  for (let i = 0; i + 1 < rawHeaders.length; i += 2) out.push([rawHeaders[i], rawHeaders[i + 1]]);
  return out;
}

function control(recorder, req, res, pathname, url) {
  const reply = (status, obj) => {
    const body = JSON.stringify(obj);
    res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
    res.end(body);
  };
  if (pathname === '/__mock/requests' && req.method === 'GET') {
    const since = Number(url.searchParams.get('since') ?? 0) || 0;
    const limit = Number(url.searchParams.get('limit') ?? 0) || 0;
    return reply(200, recorder.toJSON(since, limit));
  }
  if (pathname === '/__mock/reset' && req.method === 'POST') {
    recorder.reset();
    return reply(200, { ok: true });
  }
  if (pathname === '/__mock/health' && req.method === 'GET') return reply(200, { ok: true, last_seq: recorder.nextId - 1 });
  return reply(404, { error: `no control endpoint ${req.method} ${pathname}` });
}

// ---------------------------------------------------------------------------------------------
// Main

async function main() {
  const opts = parseCli();
  const recorder = new Recorder(opts.maxRecords);
  const handler = makeHandler(opts, recorder);
  const tls = Boolean(opts.tlsCert);
  const serverOpts = { keepAliveTimeout: 120_000, headersTimeout: 130_000, requestTimeout: 0 };
  const server = tls
    ? https.createServer({ ...serverOpts, cert: await readFile(opts.tlsCert), key: await readFile(opts.tlsKey) }, handler)
    : http.createServer(serverOpts, handler);
  server.keepAliveTimeout = serverOpts.keepAliveTimeout;
  server.headersTimeout = serverOpts.headersTimeout;
  server.on('clientError', (err, sock) => {
    if (sock.writable) sock.end('HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n');
    else sock.destroy();
  });
  server.on('tlsClientError', () => {});

  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen({ port: opts.port, host: '127.0.0.1' }, resolve);
  });
  const port = server.address().port;
  if (opts.portFile) {
    const tmp = `${opts.portFile}.tmp${process.pid}`;
    await writeFile(tmp, `${port}\n`);
    await rename(tmp, opts.portFile);
  }
  process.stdout.write(`mock_provider: listening on ${tls ? 'https' : 'http'}://127.0.0.1:${port} (provider ${opts.provider})\n`);

  const shutdown = () => {
    server.close();
    for (const s of liveSockets) {
      const st = connState.get(s);
      if (st) st.destroyedByMock = true;
      s.destroy();
    }
    process.exit(0);
  };
  process.on('SIGTERM', shutdown);
  process.on('SIGINT', shutdown);
}

main().catch((e) => die(e.stack ?? String(e)));
