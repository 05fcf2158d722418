// Runs one request through tollgate with the official OpenAI Node SDK and reports it.
//
// tests/sdk_clients.rs starts tollgate against a mock upstream and a fake Blnk, then runs this
// script once per scenario. The script sends one request, checks what the SDK returned, and
// prints one JSON line to stdout with what it observed. It exits with status 1 and a message
// on stderr when an observation does not match.
//
// Environment:
//   TOLLGATE_BASE_URL   tollgate's base URL, ending in /v1
//   TOLLGATE_CUSTOMER   customer id, sent in the X-Customer-Id header
//   TOLLGATE_SCENARIO   one of the names in SCENARIOS
//   TOLLGATE_EXPECT     optional JSON object of expected observations: "text", "embedding",
//                       "usage" (compared as a subset of the SDK's usage object) and
//                       "cost_usd" (the x-tollgate-cost-usd header)

import { isDeepStrictEqual } from 'node:util';

import OpenAI from 'openai';
import { VERSION } from 'openai/version';

const CHAT_MODEL = 'gpt-4o-mini';
const COMPLETIONS_MODEL = 'gpt-3.5-turbo-instruct';
const EMBEDDING_MODEL = 'text-embedding-3-small';
const PROMPT = 'Say hello.';

// Response headers copied into the report. A header the response lacks is reported as null.
const REPORTED_HEADERS = [
  'x-tollgate-request-id',
  'x-tollgate-cost-usd',
  'x-tollgate-charge',
  'x-should-retry',
  'content-type',
];

/** A missing setting, or an observation that differs from what the scenario expects. */
class CheckFailed extends Error {}

function check(condition, message) {
  if (!condition) {
    throw new CheckFailed(message);
  }
}

function requiredEnv(name) {
  const value = process.env[name] ?? '';
  check(value !== '', `the environment variable ${name} is missing; tests/sdk_clients.rs sets it`);
  return value;
}

function loadExpectations() {
  const text = process.env.TOLLGATE_EXPECT ?? '';
  if (text === '') {
    return {};
  }
  let expected;
  try {
    expected = JSON.parse(text);
  } catch (error) {
    throw new CheckFailed(`TOLLGATE_EXPECT is not valid JSON: ${error.message}`);
  }
  check(expected !== null && typeof expected === 'object' && !Array.isArray(expected), 'TOLLGATE_EXPECT must be a JSON object');
  return expected;
}

function reportedHeaders(headers) {
  return Object.fromEntries(REPORTED_HEADERS.map((name) => [name, headers.get(name)]));
}

/** Builds the report of a successful call, checking the status and tollgate's request id. */
function report(response, observed) {
  check(response.status === 200, `expected HTTP 200, got ${response.status}`);
  const headers = reportedHeaders(response.headers);
  check(Boolean(headers['x-tollgate-request-id']), 'the response has no x-tollgate-request-id header');
  return { status: response.status, headers, ...observed };
}

const chatRequest = { model: CHAT_MODEL, messages: [{ role: 'user', content: PROMPT }] };

// Scenarios. Each sends one request and returns its report.

async function chat(client) {
  const { data: completion, response } = await client.chat.completions.create(chatRequest).withResponse();
  check(completion.choices.length === 1, `expected 1 choice, got ${completion.choices.length}`);
  const text = completion.choices[0].message.content;
  return report(response, { text, usage: completion.usage ?? null });
}

/** Collects the text of a chat stream, counting chunks and those with no choices. */
async function readChatStream(stream) {
  let text = '';
  let chunks = 0;
  let emptyChoiceChunks = 0;
  let usage = null;
  let usageChunkIndex = null;
  for await (const chunk of stream) {
    if (chunk.choices.length === 0) {
      emptyChoiceChunks += 1;
    }
    if (chunk.usage) {
      usage = chunk.usage;
      usageChunkIndex = chunks;
    }
    for (const choice of chunk.choices) {
      text += choice.delta?.content ?? '';
    }
    chunks += 1;
  }
  return {
    text,
    usage,
    chunks,
    empty_choice_chunks: emptyChoiceChunks,
    usage_chunk_is_last: usageChunkIndex !== null && usageChunkIndex === chunks - 1,
  };
}

async function chatStream(client) {
  const { data: stream, response } = await client.chat.completions
    .create({ ...chatRequest, stream: true })
    .withResponse();
  const observed = await readChatStream(stream);
  check(
    observed.empty_choice_chunks === 0,
    `${observed.empty_choice_chunks} chunk(s) with empty choices reached the SDK, ` +
      'but the request did not set stream_options.include_usage, so tollgate must remove the usage-only chunk',
  );
  check(observed.usage === null, `a chunk carried usage, but the request did not set stream_options.include_usage: ${JSON.stringify(observed.usage)}`);
  return report(response, observed);
}

async function chatStreamUsage(client) {
  const { data: stream, response } = await client.chat.completions
    .create({ ...chatRequest, stream: true, stream_options: { include_usage: true } })
    .withResponse();
  const observed = await readChatStream(stream);
  check(observed.usage !== null, 'the stream ended without the usage chunk that stream_options.include_usage requests');
  check(
    observed.empty_choice_chunks === 1,
    `expected exactly 1 usage-only chunk, got ${observed.empty_choice_chunks} chunks with empty choices`,
  );
  check(observed.usage_chunk_is_last, 'the usage chunk was not the last chunk of the stream');
  return report(response, observed);
}

async function responses(client) {
  const { data: result, response } = await client.responses
    .create({ model: CHAT_MODEL, input: PROMPT })
    .withResponse();
  return report(response, { text: result.output_text, usage: result.usage ?? null });
}

async function responsesStream(client) {
  const { data: stream, response } = await client.responses
    .create({ model: CHAT_MODEL, input: PROMPT, stream: true })
    .withResponse();
  let text = '';
  let usage = null;
  const events = [];
  for await (const event of stream) {
    events.push(event.type);
    if (event.type === 'response.output_text.delta') {
      text += event.delta;
    } else if (event.type === 'response.completed') {
      usage = event.response.usage ?? null;
    }
  }
  check(events.length > 0, 'the stream ended without any event');
  check(
    events.at(-1) === 'response.completed',
    `the last event was ${JSON.stringify(events.at(-1))}, expected the terminal "response.completed"`,
  );
  check(usage !== null, 'the response.completed event carried no usage');
  return report(response, { text, usage, events });
}

async function embeddings(client) {
  // No encoding_format: the SDK requests base64 and decodes it to floats itself.
  const { data: result, response } = await client.embeddings
    .create({ model: EMBEDDING_MODEL, input: PROMPT })
    .withResponse();
  check(result.data.length === 1, `expected 1 embedding, got ${result.data.length}`);
  const embedding = Array.from(result.data[0].embedding);
  return report(response, { embedding, usage: result.usage ?? null });
}

async function completions(client) {
  const { data: completion, response } = await client.completions
    .create({ model: COMPLETIONS_MODEL, prompt: PROMPT })
    .withResponse();
  check(completion.choices.length === 1, `expected 1 choice, got ${completion.choices.length}`);
  return report(response, { text: completion.choices[0].text, usage: completion.usage ?? null });
}

async function completionsStream(client) {
  const { data: stream, response } = await client.completions
    .create({ model: COMPLETIONS_MODEL, prompt: PROMPT, stream: true })
    .withResponse();
  let text = '';
  let chunks = 0;
  let emptyChoiceChunks = 0;
  let usage = null;
  for await (const chunk of stream) {
    chunks += 1;
    if (chunk.choices.length === 0) {
      emptyChoiceChunks += 1;
    }
    if (chunk.usage) {
      usage = chunk.usage;
    }
    for (const choice of chunk.choices) {
      text += choice.text;
    }
  }
  check(
    emptyChoiceChunks === 0,
    `${emptyChoiceChunks} chunk(s) with empty choices reached the SDK, ` +
      'but the request did not set stream_options.include_usage, so tollgate must remove the usage-only chunk',
  );
  check(usage === null, `a chunk carried usage, but the request did not set stream_options.include_usage: ${JSON.stringify(usage)}`);
  return report(response, { text, usage, chunks, empty_choice_chunks: emptyChoiceChunks });
}

async function insufficientFunds(client) {
  try {
    await client.chat.completions.create({ ...chatRequest, max_tokens: 100 });
  } catch (error) {
    if (!(error instanceof OpenAI.APIError) || error.status === undefined) {
      throw error;
    }
    const headers = reportedHeaders(error.headers);
    check(error.status === 402, `expected HTTP 402, got ${error.status}: ${error.message}`);
    check(error.code === 'insufficient_funds', `expected error code insufficient_funds, got ${JSON.stringify(error.code)}`);
    check(error.type === 'insufficient_quota', `expected error type insufficient_quota, got ${JSON.stringify(error.type)}`);
    check(headers['x-should-retry'] === 'false', `expected x-should-retry: false, got ${JSON.stringify(headers['x-should-retry'])}`);
    return { status: error.status, headers, error: { type: error.type, code: error.code, message: error.message } };
  }
  throw new CheckFailed('the request succeeded, but the customer cannot pay for it, so tollgate must return 402');
}

const SCENARIOS = {
  chat,
  chat_stream: chatStream,
  chat_stream_usage: chatStreamUsage,
  responses,
  responses_stream: responsesStream,
  embeddings,
  completions,
  completions_stream: completionsStream,
  insufficient_funds: insufficientFunds,
};

/** Returns whether every key of `expected` is in `observed` with an equal value, at any depth. */
function isSubset(expected, observed) {
  if (expected !== null && typeof expected === 'object' && !Array.isArray(expected)) {
    if (observed === null || typeof observed !== 'object' || Array.isArray(observed)) {
      return false;
    }
    return Object.entries(expected).every(([key, value]) => key in observed && isSubset(value, observed[key]));
  }
  return isDeepStrictEqual(expected, observed);
}

function compare(expected, observed) {
  for (const key of ['text', 'embedding']) {
    if (key in expected) {
      check(
        isDeepStrictEqual(observed[key], expected[key]),
        `expected ${key} ${JSON.stringify(expected[key])}, got ${JSON.stringify(observed[key])}`,
      );
    }
  }
  if ('usage' in expected) {
    check(
      isSubset(expected.usage, observed.usage),
      `expected usage containing ${JSON.stringify(expected.usage)}, got ${JSON.stringify(observed.usage)}`,
    );
  }
  if ('cost_usd' in expected) {
    const cost = observed.headers['x-tollgate-cost-usd'];
    check(cost === expected.cost_usd, `expected x-tollgate-cost-usd ${JSON.stringify(expected.cost_usd)}, got ${JSON.stringify(cost)}`);
  }
}

async function main() {
  const scenario = process.env.TOLLGATE_SCENARIO;
  try {
    const baseURL = requiredEnv('TOLLGATE_BASE_URL');
    const customer = requiredEnv('TOLLGATE_CUSTOMER');
    requiredEnv('TOLLGATE_SCENARIO');
    const expected = loadExpectations();
    const run = Object.hasOwn(SCENARIOS, scenario) ? SCENARIOS[scenario] : undefined;
    check(run !== undefined, `unknown scenario ${JSON.stringify(scenario)}; expected one of ${Object.keys(SCENARIOS).join(', ')}`);
    const client = new OpenAI({
      baseURL,
      apiKey: 'sk-client-test',
      maxRetries: 0,
      timeout: 30_000,
      defaultHeaders: { 'X-Customer-Id': customer },
    });
    const observed = await run(client);
    compare(expected, observed);
    const output = { sdk: 'node', sdk_version: VERSION, scenario, ...observed };
    process.stdout.write(`${JSON.stringify(output)}\n`);
    return 0;
  } catch (error) {
    if (error instanceof CheckFailed) {
      process.stderr.write(`client_test.mjs: scenario ${JSON.stringify(scenario)} failed: ${error.message}\n`);
    } else if (error instanceof OpenAI.OpenAIError) {
      process.stderr.write(`client_test.mjs: the SDK raised ${error.constructor.name}: ${error.message}\n`);
    } else {
      throw error;
    }
    return 1;
  }
}

process.exitCode = await main();
