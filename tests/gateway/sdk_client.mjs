#!/usr/bin/env node
// One call with an official provider SDK (@anthropic-ai/sdk or openai), printed as one JSON line.
// Used by the gateway tests (through the tunnel) and by test_mock_selfcheck.sh (against the mock).
// See README.md beside this file for the options and the output format.

import { createHash } from 'node:crypto';
import { parseArgs } from 'node:util';

const SCENARIOS = {
  anthropic: ['messages', 'messages-stream', 'messages-stream-raw', 'count-tokens', 'models'],
  openai: ['chat', 'chat-stream', 'chat-stream-raw', 'responses', 'responses-stream', 'responses-stream-raw', 'models'],
};

const USAGE = `usage: node sdk_client.mjs --provider anthropic|openai --base-url URL --scenario NAME
         [--api-key KEY] [--anthropic-auth sdk|x-api-key] [--model M] [--prompt TEXT] [--header 'Name: value']...
         [--tools] [--thinking] [--reasoning EFFORT] [--max-tokens N] [--timeout MS]
         [--abort-after-events N] [--abort-after-ms MS] [--hash-body]
scenarios: anthropic: ${SCENARIOS.anthropic.join(', ')}
           openai:    ${SCENARIOS.openai.join(', ')}`;

function fail(msg) {
  process.stderr.write(`sdk_client: ${msg}\n${USAGE}\n`);
  process.exit(2);
}

let args;
try {
  args = parseArgs({
    options: {
      provider: { type: 'string' },
      'base-url': { type: 'string' },
      'api-key': { type: 'string', default: '-' },
      'anthropic-auth': { type: 'string', default: 'sdk' },
      scenario: { type: 'string' },
      model: { type: 'string' },
      prompt: { type: 'string', default: 'Hello from the SDK client' },
      header: { type: 'string', multiple: true, default: [] },
      tools: { type: 'boolean', default: false },
      thinking: { type: 'boolean', default: false },
      reasoning: { type: 'string' },
      'max-tokens': { type: 'string' },
      timeout: { type: 'string', default: '30000' },
      'abort-after-events': { type: 'string' },
      'abort-after-ms': { type: 'string' },
      'hash-body': { type: 'boolean', default: false },
      help: { type: 'boolean', default: false },
    },
    strict: true,
  }).values;
} catch (e) {
  fail(e.message);
}
if (args.help) {
  process.stdout.write(`${USAGE}\n`);
  process.exit(0);
}
const provider = args.provider;
if (!SCENARIOS[provider]) fail('--provider must be anthropic or openai');
if (!args['base-url']) fail('--base-url is required');
if (!SCENARIOS[provider].includes(args.scenario)) fail(`unknown scenario ${args.scenario} for ${provider}`);
if (!['sdk', 'x-api-key'].includes(args['anthropic-auth'])) fail('--anthropic-auth must be sdk or x-api-key');

const headers = {};
for (const h of args.header) {
  const i = h.indexOf(':');
  if (i <= 0) fail(`bad --header ${JSON.stringify(h)} (want 'Name: value')`);
  headers[h.slice(0, i).trim()] = h.slice(i + 1).trim();
}
const abortAfterEvents = args['abort-after-events'] !== undefined ? Number(args['abort-after-events']) : null;
const abortAfterMs = args['abort-after-ms'] !== undefined ? Number(args['abort-after-ms']) : null;
const timeout = Number(args.timeout);

// The OpenAI SDK appends /chat/completions etc. to its base URL, which conventionally ends in /v1;
// accept a bare origin (http://ai) too. The Anthropic SDK appends /v1/messages to the origin.
function baseUrlFor(p, url) {
  const u = new URL(url);
  if (p === 'openai' && (u.pathname === '' || u.pathname === '/')) return `${u.origin}/v1`;
  return url.replace(/\/+$/, '');
}

// Wrap fetch to report the HTTP status, URL and request id of the last response the SDK saw
// (with --hash-body, also the SHA-256 of its body bytes, read from a tee of what the SDK reads).
const seen = { url: null, status: null, request_id: null, body_sha256: null };
async function recordingFetch(input, init) {
  let r = await globalThis.fetch(input, init);
  seen.url = typeof input === 'string' ? input : input.url ?? String(input);
  seen.status = r.status;
  seen.request_id = r.headers.get('request-id') ?? r.headers.get('x-request-id');
  if (args['hash-body'] && r.body) {
    const [mine, theirs] = r.body.tee();
    seen.body_sha256 = (async () => {
      const h = createHash('sha256');
      for await (const piece of mine) h.update(piece);
      return h.digest('hex');
    })().catch(() => null);
    r = new Response(theirs, { status: r.status, statusText: r.statusText, headers: r.headers });
  }
  return r;
}

const controller = new AbortController();
let abortedAt = null;
const abortNow = () => {
  if (abortedAt === null) abortedAt = Date.now();
  controller.abort();
};
if (abortAfterMs !== null) setTimeout(abortNow, abortAfterMs).unref();
const reqOpts = { signal: controller.signal };

const out = { ok: true, provider, scenario: args.scenario };

function tally(type) {
  out.events = (out.events ?? 0) + 1;
  out.event_counts ??= {};
  out.event_counts[type] = (out.event_counts[type] ?? 0) + 1;
  out.first_event ??= type;
  out.last_event = type;
  return abortAfterEvents !== null && out.events >= abortAfterEvents;
}

function parseMaybe(s) {
  try { return JSON.parse(s); } catch { return null; }
}

// ---------------------------------------------------------------------------------------------
// Anthropic

function anthropicParams(stream) {
  const model = args.model ?? 'claude-sonnet-5';
  const p = {
    model,
    max_tokens: Number(args['max-tokens'] ?? (args.thinking ? 2048 : 256)),
    messages: [{ role: 'user', content: args.prompt }],
  };
  if (args.tools) {
    p.tools = [{
      name: 'Bash',
      description: 'Run a shell command',
      input_schema: { type: 'object', properties: { command: { type: 'string' } }, required: ['command'] },
    }];
  }
  if (args.thinking) p.thinking = { type: 'enabled', budget_tokens: 1024 };
  if (stream) p.stream = true;
  return p;
}

function summarizeAnthropicMessage(m) {
  out.id = m.id;
  out.model = m.model;
  out.stop_reason = m.stop_reason;
  out.text = m.content.filter((b) => b.type === 'text').map((b) => b.text).join('');
  const thinking = m.content.filter((b) => b.type === 'thinking');
  if (thinking.length) {
    out.thinking = thinking.map((b) => b.thinking).join('');
    out.signature = thinking[thinking.length - 1].signature;
  }
  out.tool_calls = m.content.filter((b) => b.type === 'tool_use')
    .map((b) => ({ type: 'tool_use', id: b.id, name: b.name, input: b.input, arguments: JSON.stringify(b.input) }));
  out.content_types = m.content.map((b) => b.type);
  out.usage = m.usage;
}

async function runAnthropic(client) {
  switch (args.scenario) {
    case 'messages': {
      summarizeAnthropicMessage(await client.messages.create(anthropicParams(false), reqOpts));
      return;
    }
    case 'messages-stream': {
      const stream = client.messages.stream(anthropicParams(false), reqOpts);
      stream.on('streamEvent', (ev) => {
        if (tally(ev.type)) { abortNow(); stream.abort(); }
      });
      try {
        summarizeAnthropicMessage(await stream.finalMessage());
      } catch (e) {
        if (abortedAt !== null) return;
        throw e;
      }
      return;
    }
    case 'messages-stream-raw': {
      // stream: true through messages.create: the raw event iterator; reassemble by hand.
      const stream = await client.messages.create(anthropicParams(true), reqOpts);
      const blocks = [];
      let usage = null;
      for await (const ev of stream) {
        if (ev.type === 'message_start') {
          out.id = ev.message.id;
          out.model = ev.message.model;
          usage = { ...ev.message.usage };
        } else if (ev.type === 'content_block_start') {
          blocks[ev.index] = { ...ev.content_block, json: '' };
        } else if (ev.type === 'content_block_delta') {
          const b = blocks[ev.index];
          if (ev.delta.type === 'text_delta') b.text += ev.delta.text;
          else if (ev.delta.type === 'input_json_delta') b.json += ev.delta.partial_json;
          else if (ev.delta.type === 'thinking_delta') b.thinking += ev.delta.thinking;
          else if (ev.delta.type === 'signature_delta') b.signature = ev.delta.signature;
        } else if (ev.type === 'message_delta') {
          out.stop_reason = ev.delta.stop_reason;
          for (const [k, v] of Object.entries(ev.usage)) if (v !== null && v !== undefined) usage[k] = v;
        }
        if (tally(ev.type)) { abortNow(); break; }
      }
      out.text = blocks.filter((b) => b?.type === 'text').map((b) => b.text).join('');
      const th = blocks.filter((b) => b?.type === 'thinking');
      if (th.length) { out.thinking = th.map((b) => b.thinking).join(''); out.signature = th[th.length - 1].signature; }
      out.tool_calls = blocks.filter((b) => b?.type === 'tool_use')
        .map((b) => ({ type: 'tool_use', id: b.id, name: b.name, input: parseMaybe(b.json), arguments: b.json }));
      out.content_types = blocks.map((b) => b?.type);
      out.usage = usage;
      return;
    }
    case 'count-tokens': {
      const p = anthropicParams(false);
      delete p.max_tokens;
      const r = await client.messages.countTokens(p, reqOpts);
      out.input_tokens = r.input_tokens;
      return;
    }
    case 'models': {
      const ids = [];
      for await (const m of client.models.list({}, reqOpts)) ids.push(m.id);
      out.models = ids;
      return;
    }
    default:
      throw new Error('unreachable');
  }
}

// ---------------------------------------------------------------------------------------------
// OpenAI

function chatParams(stream) {
  const p = { model: args.model ?? 'gpt-5.4', messages: [{ role: 'user', content: args.prompt }] };
  if (args['max-tokens']) p.max_completion_tokens = Number(args['max-tokens']);
  if (args.tools) {
    p.tools = [{
      type: 'function',
      function: {
        name: 'shell',
        description: 'Run a command',
        parameters: { type: 'object', properties: { command: { type: 'array', items: { type: 'string' } } }, required: ['command'] },
      },
    }];
  }
  if (args.reasoning) p.reasoning_effort = args.reasoning;
  if (stream) {
    p.stream = true;
    p.stream_options = { include_usage: true };
  }
  return p;
}

function responsesParams(stream) {
  const p = { model: args.model ?? 'gpt-5.4', input: [{ role: 'user', content: [{ type: 'input_text', text: args.prompt }] }] };
  if (args['max-tokens']) p.max_output_tokens = Number(args['max-tokens']);
  if (args.tools) {
    p.tools = [
      { type: 'function', name: 'shell', description: 'Run a command', strict: false,
        parameters: { type: 'object', properties: { command: { type: 'array', items: { type: 'string' } } }, required: ['command'] } },
      { type: 'local_shell' },
    ];
  }
  if (args.reasoning) p.reasoning = { effort: args.reasoning };
  if (stream) p.stream = true;
  return p;
}

function summarizeChat(c) {
  out.id = c.id;
  out.model = c.model;
  const choice = c.choices[0];
  out.stop_reason = choice?.finish_reason ?? null;
  out.text = choice?.message?.content ?? null;
  out.tool_calls = (choice?.message?.tool_calls ?? []).map((t) => ({
    type: t.type, id: t.id, name: t.function.name, input: parseMaybe(t.function.arguments), arguments: t.function.arguments,
  }));
  if (c.usage) out.usage = c.usage;
}

function summarizeResponse(r) {
  out.id = r.id;
  out.model = r.model;
  out.status = r.status;
  out.stop_reason = r.status === 'incomplete' ? (r.incomplete_details?.reason ?? 'incomplete') : r.status;
  out.text = r.output_text ?? r.output.filter((i) => i.type === 'message')
    .flatMap((i) => i.content).filter((c) => c.type === 'output_text').map((c) => c.text).join('');
  out.output_types = r.output.map((i) => i.type);
  out.tool_calls = [];
  for (const i of r.output) {
    if (i.type === 'function_call') {
      out.tool_calls.push({ type: i.type, id: i.call_id, name: i.name, input: parseMaybe(i.arguments), arguments: i.arguments });
    } else if (i.type === 'custom_tool_call') {
      out.tool_calls.push({ type: i.type, id: i.call_id, name: i.name, input: i.input, arguments: i.input });
    } else if (i.type === 'local_shell_call') {
      out.tool_calls.push({ type: i.type, id: i.call_id, name: 'local_shell', input: i.action, arguments: JSON.stringify(i.action) });
    }
  }
  out.usage = r.usage;
}

async function runOpenAI(client) {
  switch (args.scenario) {
    case 'chat':
      summarizeChat(await client.chat.completions.create(chatParams(false), reqOpts));
      return;
    case 'chat-stream': {
      // The SDK's stream helper reassembles tool-call arguments; usage comes in the last chunk.
      const p = chatParams(true);
      delete p.stream;
      const stream = client.chat.completions.stream(p, reqOpts);
      let usage = null;
      stream.on('chunk', (chunk) => {
        if (chunk.usage) usage = chunk.usage;
        if (tally(chunk.choices.length ? 'chunk' : 'usage_chunk')) { abortNow(); stream.abort(); }
      });
      try {
        summarizeChat(await stream.finalChatCompletion());
      } catch (e) {
        if (abortedAt !== null) return;
        throw e;
      }
      out.usage = usage;
      return;
    }
    case 'chat-stream-raw': {
      const stream = await client.chat.completions.create(chatParams(true), reqOpts);
      const calls = [];
      let text = null;
      for await (const chunk of stream) {
        if (chunk.usage) out.usage = chunk.usage;
        out.id = chunk.id;
        out.model = chunk.model;
        for (const ch of chunk.choices) {
          if (typeof ch.delta?.content === 'string') text = (text ?? '') + ch.delta.content;
          for (const tc of ch.delta?.tool_calls ?? []) {
            calls[tc.index] ??= { type: 'function', id: null, name: '', arguments: '' };
            if (tc.id) calls[tc.index].id = tc.id;
            if (tc.function?.name) calls[tc.index].name += tc.function.name;
            if (tc.function?.arguments) calls[tc.index].arguments += tc.function.arguments;
          }
          if (ch.finish_reason) out.stop_reason = ch.finish_reason;
        }
        if (tally(chunk.choices.length ? 'chunk' : 'usage_chunk')) { abortNow(); break; }
      }
      out.text = text;
      out.tool_calls = calls.map((c) => ({ ...c, input: parseMaybe(c.arguments) }));
      return;
    }
    case 'responses':
      summarizeResponse(await client.responses.create(responsesParams(false), reqOpts));
      return;
    case 'responses-stream': {
      const p = responsesParams(true);
      delete p.stream;
      const stream = client.responses.stream(p, reqOpts);
      stream.on('event', (ev) => {
        if (tally(ev.type)) { abortNow(); stream.abort(); }
      });
      try {
        summarizeResponse(await stream.finalResponse());
      } catch (e) {
        if (abortedAt !== null) return;
        throw e;
      }
      return;
    }
    case 'responses-stream-raw': {
      const stream = await client.responses.create(responsesParams(true), reqOpts);
      let lastSeq = -1;
      out.sequence_ok = true;
      let final = null;
      for await (const ev of stream) {
        if (typeof ev.sequence_number !== 'number' || ev.sequence_number !== lastSeq + 1) out.sequence_ok = false;
        lastSeq = ev.sequence_number;
        if (ev.type === 'response.completed' || ev.type === 'response.incomplete' || ev.type === 'response.failed') final = ev.response;
        if (tally(ev.type)) { abortNow(); break; }
      }
      if (final) summarizeResponse(final);
      return;
    }
    case 'models': {
      const ids = [];
      for await (const m of client.models.list(reqOpts)) ids.push(m.id);
      out.models = ids;
      return;
    }
    default:
      throw new Error('unreachable');
  }
}

// ---------------------------------------------------------------------------------------------

function describeError(e) {
  const err = { name: e?.constructor?.name ?? 'Error', message: e?.message ?? String(e) };
  if (e && typeof e === 'object') {
    if (e.status !== undefined) err.status = e.status;
    // Anthropic: e.error is the body {type:"error", error:{type, message}}; OpenAI: e.type / e.code.
    const body = e.error;
    if (body?.error?.type) err.type = body.error.type;
    else if (body?.type && body.type !== 'error') err.type = body.type;
    if (e.type) err.type = e.type;
    if (e.code !== undefined && e.code !== null) err.code = e.code;
    if (body?.error?.message) err.message = body.error.message;
    else if (body?.message) err.message = body.message;
    if (e.requestID) err.request_id = e.requestID;
    // Connection errors: the root cause (ECONNREFUSED, a TLS verification code, UND_ERR_SOCKET…).
    for (let c = e.cause, depth = 0; c && depth < 5; c = c.cause, depth++) {
      if (c.code) err.cause = c.code;
      else if (c.errors?.[0]?.code) err.cause = c.errors[0].code;
      if (c.message) err.cause_message = c.message;
    }
  }
  return err;
}

async function main() {
  const baseURL = baseUrlFor(provider, args['base-url']);
  const common = { apiKey: args['api-key'], baseURL, maxRetries: 0, timeout, defaultHeaders: headers, fetch: recordingFetch };
  try {
    if (provider === 'anthropic') {
      // sdk: the SDK's own credential header (Authorization: Bearer since 1.0); x-api-key: the key in
      // x-api-key as Claude Code sends ANTHROPIC_API_KEY.
      const opts = args['anthropic-auth'] === 'x-api-key'
        ? { ...common, apiKey: null, authToken: null, defaultHeaders: { ...headers, 'x-api-key': args['api-key'] } }
        : common;
      // Import only the SDK in use: loading both costs a noticeable part of a short run.
      const { default: Anthropic } = await import('@anthropic-ai/sdk');
      await runAnthropic(new Anthropic(opts));
    } else {
      const { default: OpenAI } = await import('openai');
      await runOpenAI(new OpenAI(common));
    }
  } catch (e) {
    if (abortedAt === null) {
      out.ok = false;
      out.error = describeError(e);
    }
  }
  if (abortedAt !== null) {
    out.aborted = true;
    out.aborted_at = abortedAt;
  }
  out.http_status = seen.status;
  if (seen.body_sha256) out.body_sha256 = await seen.body_sha256;
  out.request_id = seen.request_id;
  out.url = seen.url;
  // Exit at once: idle keep-alive sockets would otherwise hold the process for seconds.
  process.stdout.write(`${JSON.stringify(out)}\n`, () => process.exit(0));
}

main();
