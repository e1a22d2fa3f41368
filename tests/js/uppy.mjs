// End-to-end browser client for partway: Uppy with @uppy/tus in headless Chromium
// (Debian's /usr/bin/chromium, driven by playwright-core). The Rust test suite spawns
// this script and then checks the stored object itself; this script only uploads and
// reports one line of JSON on stdout.
//
// The page (uppy-page.html, plus the `uppy` package's prebuilt dist/uppy.min.mjs) is
// served by a static server this script starts on 127.0.0.1:--page-port, a different
// origin than partway's, so every tus request is a real cross-origin (CORS) request,
// sent with withCredentials: true unless --no-credentials is given. The file comes from
// disk: Playwright's setInputFiles puts it into the page's <input type=file>, whose
// change handler hands it to uppy.addFile and starts uppy.upload().
//
// Setup:  (cd tests/js && npm ci) and `apt-get install chromium`
// Usage:  node tests/js/uppy.mjs --endpoint URL --file PATH --page-port N
//              [--chunk-size BYTES] [--parallel N] [--no-credentials] [--timeout-ms MS] [--verbose]
//              [--cookie NAME=VALUE] [--download] [--ignore-https-errors]
// --cookie puts an HttpOnly cookie for partway's host in the browser, as an app's login
// would; Uppy sends it with its credentialed requests. --download then has the page fetch
// the finished upload with credentials (and once without) and report what it got:
// "download": {status, size, sha256, anonymousStatus}. --ignore-https-errors accepts the
// endpoint's certificate (one from a test CA). The outcome always lists the HTTP protocols
// Chromium used with the endpoint, as its network layer reports them: "protocols": ["h2"].
// --parallel N sets parallelUploads: N (partial uploads, then a final concatenation);
// the script checks that N partial uploads and one final upload were created.
// Success: {"url": "...", "size": N} (url as Uppy reports it in upload-success), exit 0.
// Failure: message on stderr, exit 1.  Overall timeout: exit 2.
// Browser console errors and warnings, page errors and failed requests go to stderr
// (--verbose: every console message and every response from the tus endpoint too).
import * as fs from 'node:fs'
import * as http from 'node:http'
import * as os from 'node:os'
import * as path from 'node:path'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import { chromium } from 'playwright-core'

const CHROMIUM = '/usr/bin/chromium'
const CHROMIUM_FLAGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
]
const here = path.dirname(fileURLToPath(import.meta.url))

const { values: args } = parseArgs({
  options: {
    endpoint: { type: 'string' },
    file: { type: 'string' },
    'page-port': { type: 'string' },
    'chunk-size': { type: 'string' },
    parallel: { type: 'string' },
    'no-credentials': { type: 'boolean', default: false },
    'timeout-ms': { type: 'string', default: '120000' },
    verbose: { type: 'boolean', default: false },
    cookie: { type: 'string' },
    download: { type: 'boolean', default: false },
    'ignore-https-errors': { type: 'boolean', default: false },
  },
})

const log = (message) => process.stderr.write(`uppy.mjs: ${message}\n`)
process.stderr.on('error', () => {}) // a closed stderr pipe must not skip the cleanup
const cleanups = []
let exiting = false
async function exit(code) {
  if (exiting) return
  exiting = true
  for (const cleanup of cleanups.reverse()) {
    // A cleanup that hangs (a wedged browser) must not keep the process alive.
    await Promise.race([cleanup().catch(() => {}), new Promise((r) => setTimeout(r, 5000))])
  }
  process.exit(code)
}
function fail(message, code = 1) {
  log(message)
  return exit(code)
}

function intArg(name) {
  if (args[name] === undefined) return undefined
  const n = Number(args[name])
  if (!Number.isSafeInteger(n) || n < 0) {
    log(`--${name} must be a non-negative integer`)
    process.exit(1)
  }
  return n
}

if (!args.endpoint || !args.file || !args['page-port']) {
  log('--endpoint, --file and --page-port are required')
  process.exit(1)
}
const pagePort = intArg('page-port')
const chunkSize = intArg('chunk-size')
const parallel = intArg('parallel')
const timeoutMs = intArg('timeout-ms')
if (chunkSize === 0) fail('--chunk-size must be positive')
if (!fs.existsSync(CHROMIUM)) fail(`${CHROMIUM} is missing: apt-get install chromium (or run tests/run.sh)`)
const size = fs.statSync(args.file).size
const endpointOrigin = new URL(args.endpoint).origin

setTimeout(() => fail(`timed out after ${timeoutMs} ms`, 2), timeoutMs).unref()
process.on('unhandledRejection', (err) => fail(err?.stack ?? String(err)))

// The static server for the page, on its own origin.
function serveStatic() {
  const files = {
    '/': [path.join(here, 'uppy-page.html'), 'text/html; charset=utf-8'],
    '/uppy.min.mjs': [path.join(here, 'node_modules/uppy/dist/uppy.min.mjs'), 'text/javascript; charset=utf-8'],
  }
  for (const [file] of Object.values(files)) {
    if (!fs.existsSync(file)) fail(`${file} is missing: run \`npm ci\` in tests/js (or tests/run.sh)`)
  }
  const server = http.createServer((req, res) => {
    const entry = files[new URL(req.url, 'http://x').pathname]
    if (!entry) {
      res.writeHead(req.url === '/favicon.ico' ? 204 : 404).end()
      return
    }
    res.writeHead(200, { 'Content-Type': entry[1], 'Cache-Control': 'no-store' })
    fs.createReadStream(entry[0]).pipe(res)
  })
  return new Promise((resolve, reject) => {
    server.once('error', (err) => reject(new Error(`page server cannot listen on 127.0.0.1:${pagePort}: ${err.message}`)))
    server.listen(pagePort, '127.0.0.1', () => {
      cleanups.push(() => new Promise((r) => {
        server.close(r)
        server.closeAllConnections()
      }))
      resolve(server)
    })
  })
}

async function launch() {
  const userDataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'partway-uppy-profile-'))
  cleanups.push(async () => fs.rmSync(userDataDir, { recursive: true, force: true }))
  // Exactly our flags: no Playwright defaults. Playwright itself needs only the pipe it
  // talks over, and a persistent context needs one initial page.
  const context = await chromium.launchPersistentContext(userDataDir, {
    executablePath: CHROMIUM,
    ignoreDefaultArgs: true,
    args: [...CHROMIUM_FLAGS, `--user-data-dir=${userDataDir}`, '--remote-debugging-pipe', 'about:blank'],
    ignoreHTTPSErrors: args['ignore-https-errors'],
    timeout: 60000,
  })
  cleanups.push(() => context.close())
  return context
}

function watch(page) {
  page.on('console', (msg) => {
    if (args.verbose || msg.type() === 'error' || msg.type() === 'warning') {
      log(`browser console ${msg.type()}: ${msg.text()}`)
    }
  })
  page.on('pageerror', (err) => log(`browser page error: ${err?.stack ?? err}`))
  page.on('requestfailed', (req) => {
    log(`browser request failed: ${req.method()} ${req.url()}: ${req.failure()?.errorText}`)
  })
  if (args.verbose) {
    page.on('response', (res) => {
      if (new URL(res.url()).origin === endpointOrigin) {
        log(`browser: ${res.request().method()} ${res.url()} -> ${res.status()}`)
      }
    })
  }
}

async function main() {
  await serveStatic()
  const context = await launch()
  if (args.cookie) {
    const [name, ...rest] = args.cookie.split('=')
    await context.addCookies([{ name, value: rest.join('='), url: endpointOrigin, httpOnly: true, sameSite: 'Lax' }])
  }
  const page = context.pages()[0] ?? (await context.newPage())
  watch(page)
  // The protocols of the endpoint's responses, from Chromium's own network layer.
  const protocols = new Set()
  const cdp = await context.newCDPSession(page)
  await cdp.send('Network.enable')
  cdp.on('Network.responseReceived', ({ response }) => {
    if (new URL(response.url).origin === endpointOrigin && response.protocol) protocols.add(response.protocol)
  })
  let settle
  const outcome = new Promise((resolve) => { settle = resolve })
  await page.exposeFunction('partwayDone', (result) => settle(result))
  const query = new URLSearchParams({ endpoint: args.endpoint })
  if (chunkSize !== undefined) query.set('chunkSize', String(chunkSize))
  if (parallel !== undefined) query.set('parallel', String(parallel))
  if (args['no-credentials']) query.set('credentials', '0')
  if (args.download) query.set('download', '1')
  await page.goto(`http://127.0.0.1:${pagePort}/?${query}`, { waitUntil: 'load' })
  await page.waitForFunction(() => window.partwayReady === true, null, { timeout: 30000 })
    .catch(() => { throw new Error('the page never set up Uppy (see the browser errors above)') })
  await page.setInputFiles('#file', args.file)
  const result = await outcome
  if (!result.ok) return fail(`Uppy upload failed: ${result.error}`)
  if (result.size !== size) return fail(`Uppy reports ${result.size} bytes, the file has ${size}`)
  const concat = `${result.partials} partial and ${result.finals} final uploads`
  if (args.verbose || parallel !== undefined) log(`created ${concat}`)
  if (parallel !== undefined && parallel > 1 && (result.partials !== parallel || result.finals !== 1)) {
    return fail(`parallelUploads: ${parallel} should create ${parallel} partial and 1 final upload, not ${concat}`)
  }
  const report = {
    url: result.url,
    size,
    protocols: [...protocols],
    ...(result.download ? { download: result.download } : {}),
  }
  process.stdout.write(`${JSON.stringify(report)}\n`, () => exit(0))
}

main().catch((err) => fail(err?.stack ?? String(err)))
