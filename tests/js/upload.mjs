// End-to-end tus client for partway, driven by the real npm `tus-js-client`.
// The Rust test suite spawns this script and then checks the stored object itself;
// this script only uploads and reports one line of JSON on stdout.
//
// Setup:  (cd tests/js && npm ci)
// Usage:  node tests/js/upload.mjs --endpoint URL --file PATH [--chunk-size BYTES]
//                                  [--parallel N] [--resume] [--abort-at BYTES] [--store PATH]
//                                  [--timeout-ms MS] [--token-url URL [--stale-token TOKEN]]
//                                  [--protocol tus-v1|ietf-draft-03|ietf-draft-05]
//
// Plain mode uploads the file.  --parallel N (N >= 2) sets parallelUploads: N, so the
// file goes up as N partial uploads (Upload-Concat: partial) and one final POST
// (Upload-Concat: final;...); the script checks that this is what was sent, and the
// URL reported is the final upload's.  --resume aborts the upload (without terminating it)
// once --abort-at bytes (default 40% of the file) are reported, then resumes it with a
// fresh Upload found through a file-based fingerprint store.
// --token-url fetches a fresh bearer token before every request (onBeforeRequest), over the
// --stale-token that `headers` sends with each one, as an app refreshes a short-lived token.
// Success: {"url": "...", "size": N, "resumedFrom": null | <HEAD Upload-Offset resumed from>}, exit 0.
// Failure: message on stderr, exit 1.  Overall timeout: exit 2.
import * as fs from 'node:fs'
import * as os from 'node:os'
import * as path from 'node:path'
import { parseArgs } from 'node:util'
import { FileUrlStorage, Upload } from 'tus-js-client'

const { values: args } = parseArgs({
  options: {
    endpoint: { type: 'string' },
    file: { type: 'string' },
    'chunk-size': { type: 'string' },
    parallel: { type: 'string' },
    resume: { type: 'boolean', default: false },
    'abort-at': { type: 'string' },
    store: { type: 'string' },
    'timeout-ms': { type: 'string', default: '120000' },
    'token-url': { type: 'string' },
    'stale-token': { type: 'string' },
    protocol: { type: 'string' },
  },
})

function fail(message, code = 1) {
  process.stderr.write(`upload.mjs: ${message}\n`)
  process.exit(code)
}

function intArg(name) {
  if (args[name] === undefined) return undefined
  const n = Number(args[name])
  if (!Number.isSafeInteger(n) || n < 0) fail(`--${name} must be a non-negative integer`)
  return n
}

if (!args.endpoint || !args.file) fail('--endpoint and --file are required')
const chunkSize = intArg('chunk-size')
if (chunkSize === 0) fail('--chunk-size must be positive')
const parallel = intArg('parallel')
if (parallel !== undefined && parallel < 2) fail('--parallel must be at least 2')
if (parallel !== undefined && args.resume) fail('--parallel and --resume cannot be combined')
const timeoutMs = intArg('timeout-ms')
const size = fs.statSync(args.file).size
const abortAt = intArg('abort-at') ?? Math.max(1, Math.floor(size * 0.4))

setTimeout(() => fail(`timed out after ${timeoutMs} ms`, 2), timeoutMs)

// Options shared by every Upload; a fresh fs.ReadStream is passed per Upload (the Node
// build reads ReadStreams with a path via random-access slices, so chunkSize is optional).
function uploadOptions(extra) {
  return {
    endpoint: args.endpoint,
    metadata: { filename: path.basename(args.file), filetype: 'application/octet-stream' },
    retryDelays: [0, 200, 500, 1000],
    ...(args.protocol ? { protocol: args.protocol } : {}),
    ...(chunkSize !== undefined ? { chunkSize } : {}),
    ...(args['token-url'] ? authOptions() : {}),
    ...extra,
  }
}

// The token in `headers` may have expired; onBeforeRequest, awaited before every request,
// replaces it with a fresh one from the app's token endpoint.
function authOptions() {
  const stale = args['stale-token']
  return {
    headers: stale ? { Authorization: `Bearer ${stale}` } : {},
    onBeforeRequest: async (req) => {
      const res = await fetch(args['token-url'])
      if (!res.ok) throw new Error(`the token endpoint answered ${res.status}`)
      req.setHeader('Authorization', `Bearer ${await res.text()}`)
    },
  }
}

// Starts an Upload and resolves with it once it succeeds. `setup` may hook callbacks.
function run(options, setup = () => {}) {
  return new Promise((resolve, reject) => {
    const upload = new Upload(fs.createReadStream(args.file), {
      ...options,
      onError: reject,
      onSuccess: () => resolve(upload),
    })
    setup(upload, resolve, reject)
  })
}

function report(url, resumedFrom) {
  const line = `${JSON.stringify({ url, size, resumedFrom })}\n`
  process.stdout.write(line, () => process.exit(0))
}

async function plain() {
  if (parallel === undefined) {
    const upload = await run(uploadOptions(), (u) => u.start())
    report(upload.url, null)
    return
  }
  // The partial uploads inherit these hooks, so every request of the whole upload is seen.
  const partialUrls = []
  let finalHeader = null
  const upload = await run(uploadOptions({
    parallelUploads: parallel,
    onAfterResponse: (req, res) => {
      if (req.getMethod() !== 'POST' || res.getStatus() !== 201) return
      const concat = req.getHeader('Upload-Concat') ?? ''
      if (concat === 'partial') partialUrls.push(new URL(res.getHeader('Location'), args.endpoint).href)
      else if (concat.startsWith('final;')) finalHeader = concat
    },
  }), (u) => u.start())
  process.stderr.write(`upload.mjs: ${partialUrls.length} partial uploads, final: ${finalHeader}\n`)
  if (partialUrls.length !== parallel) fail(`expected ${parallel} partial uploads, saw ${partialUrls.length}`)
  if (finalHeader === null) fail('no final concatenation POST was seen')
  if (partialUrls.includes(upload.url)) fail(`reported URL ${upload.url} is a partial upload`)
  report(upload.url, null)
}

async function resume() {
  let tmpDir = null
  let storePath = args.store
  if (!storePath) {
    tmpDir = fs.mkdtempSync(path.join(os.tmpdir(), 'partway-tus-'))
    storePath = path.join(tmpDir, 'url-store.json')
    process.on('exit', () => fs.rmSync(tmpDir, { recursive: true, force: true }))
  }
  const urlStorage = new FileUrlStorage(storePath)
  const common = uploadOptions({ urlStorage, storeFingerprintForResuming: true })

  // Phase 1: upload until abortAt bytes are reported, then abort (no termination).
  let firstUpload = null
  let aborted = false
  await new Promise((resolve, reject) => {
    const onProgress = (sent) => {
      if (aborted || sent < abortAt) return
      aborted = true
      if (sent >= size) reject(new Error(`first upload completed (${sent} bytes) before it could be aborted`))
      else firstUpload.abort().then(resolve, reject)
    }
    run({ ...common, onProgress }, (upload) => {
      firstUpload = upload
      upload.start()
    }).then(() => reject(new Error(`first upload finished before reaching --abort-at ${abortAt}`)), reject)
  })
  const firstUrl = firstUpload.url
  if (!firstUrl) fail('first upload was aborted before an upload URL was created')

  // Phase 2: a new Upload finds the stored URL by fingerprint and resumes it.
  // The server may answer the first HEAD while it is still draining the aborted PATCH,
  // reporting a stale offset; tus-js-client then gets a 409 and re-HEADs. So resumedFrom
  // is the HEAD offset the upload actually continued from (the first accepted PATCH's
  // Upload-Offset), and every HEAD offset seen is logged to stderr.
  const heads = []
  let resumedFrom = null
  let chosen = null
  const second = await run({
    ...common,
    onAfterResponse: (req, res) => {
      const status = res.getStatus()
      if (req.getMethod() === 'HEAD' && status >= 200 && status < 300) {
        heads.push(Number(res.getHeader('Upload-Offset')))
      } else if (req.getMethod() === 'PATCH' && status >= 200 && status < 300 && resumedFrom === null) {
        resumedFrom = Number(req.getHeader('Upload-Offset'))
      }
    },
  }, async (upload, _resolve, reject) => {
    try {
      const previous = await upload.findPreviousUploads()
      if (previous.length === 0) throw new Error('no previous upload found in the fingerprint store')
      // Prefer the entry we just created, in case --store holds entries from older runs.
      chosen = previous.find((p) => p.uploadUrl === firstUrl) ?? previous[0]
      upload.resumeFromPreviousUpload(chosen)
      upload.start()
    } catch (err) {
      reject(err)
    }
  })

  await urlStorage.removeUpload(chosen.urlStorageKey) // awaited, unlike removeFingerprintOnSuccess
  if (resumedFrom === null && heads.length > 0) resumedFrom = heads[heads.length - 1] // no PATCH needed
  process.stderr.write(`upload.mjs: aborted after ${abortAt}+ bytes reported; HEAD offsets seen ` +
    `${JSON.stringify(heads)}; resumed from ${resumedFrom}\n`)
  if (second.url !== firstUrl) fail(`resumed upload URL ${second.url} differs from ${firstUrl}`)
  if (heads.length === 0) fail('resumed upload never sent a HEAD request (did it restart?)')
  if (resumedFrom === 0) fail('resumed upload started from offset 0 (a restart, not a resume)')
  if (resumedFrom >= size) fail('first upload had already completed; nothing was resumed')
  report(second.url, resumedFrom)
}

process.on('unhandledRejection', (err) => fail(err?.stack ?? String(err)))
;(args.resume ? resume() : plain()).catch((err) => fail(err?.stack ?? String(err)))
