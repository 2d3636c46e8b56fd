// The dashboard in headless chromium (tests/ui/run.sh starts everything and
// exports BASE, TOKEN, SHOTS, CLI and RUNS).  Each check looks at what a
// person sees: texts, badges, bar positions, dialogs; each page is saved as a
// screenshot in SHOTS.  Exit 1 when a check fails.
import { createRequire } from 'node:module';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const require = createRequire(new URL('../../ui/package.json', import.meta.url));
const { chromium } = require('playwright-core');

const BASE = process.env.BASE;
const TOKEN = process.env.TOKEN;
const SHOTS = process.env.SHOTS;
const CLI = process.env.CLI;
const RUNS = JSON.parse(process.env.RUNS);

let failures = 0;
let passed = 0;
const problems = []; // console errors, page errors, alerts: none allowed

function ok(cond, what) {
  if (!cond) throw new Error(what);
}

async function check(name, fn) {
  const t0 = Date.now();
  try {
    await fn();
    passed++;
    console.log(`ui-test: ok   ${name} (${Date.now() - t0} ms)`);
  } catch (e) {
    failures++;
    console.log(`ui-test: FAIL ${name}: ${e.message}`);
  }
}

async function shot(page, name) {
  await page.screenshot({ path: join(SHOTS, name + '.png'), fullPage: true });
}

// Until fn() is truthy (polling, max ms).
async function until(fn, ms, what) {
  const end = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > end) throw new Error('timed out waiting for ' + what);
    await new Promise((r) => setTimeout(r, 200));
  }
}

const profile = mkdtempSync(join(tmpdir(), 'stepkit-chromium-'));
const context = await chromium.launchPersistentContext(profile, {
  executablePath: '/usr/bin/chromium',
  headless: true,
  viewport: { width: 1360, height: 900 },
  args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync'],
});
const page = context.pages()[0] || await context.newPage();
page.on('console', (m) => { if (m.type() === 'error') problems.push('console: ' + m.text()); });
page.on('pageerror', (e) => problems.push('page error: ' + e.message));
page.on('dialog', async (d) => { problems.push('a JavaScript dialog opened: ' + d.message()); await d.dismiss(); });
// Nothing may be fetched from anywhere but the dashboard itself.
page.on('request', (r) => { if (!r.url().startsWith(BASE)) problems.push('request elsewhere: ' + r.url()); });

const statusOf = (id) => page.locator(`tr[data-run="${id}"] .badge`).first().textContent();

try {
  await check('runs list shows every state, newest first', async () => {
    await page.goto(BASE + '/ui/');
    await page.locator('[data-testid=runs-body] tr[data-run]').first().waitFor();
    await until(async () => (await statusOf(RUNS.running)) === 'running', 10000, 'running row');
    const want = {
      completed: 'completed', failed: 'failed', approval: 'waiting', cancelled: 'cancelled',
      sleeping: 'waiting', running: 'running', parent: 'completed',
    };
    for (const [k, st] of Object.entries(want)) {
      const got = await statusOf(RUNS[k]);
      ok(got === st, `${k} run shows "${got}", expected "${st}"`);
    }
    const ids = await page.locator('[data-testid=runs-body] tr[data-run]').evaluateAll(
      (rows) => rows.map((r) => r.getAttribute('data-run')));
    ok(ids.indexOf(RUNS.parent) < ids.indexOf(RUNS.completed), 'newest first: the parent run was started after the completed one');
    await shot(page, '01-runs');
  });

  await check('live refresh shows a new run without reloading the page', async () => {
    await page.evaluate(() => { window.__stepkitMarker = 42; });
    const id = execFileSync(CLI, ['start', 'ui-checkout', '--data', '{"sleep_ms": 0}']).toString().trim();
    await until(async () => (await page.locator(`tr[data-run="${id}"]`).count()) === 1, 10000, 'the new row');
    ok(await page.evaluate(() => window.__stepkitMarker === 42), 'the page was reloaded');
  });

  await check('filters: status failed and a workflow', async () => {
    await page.selectOption('[data-testid=filter-status]', 'failed');
    await until(async () => {
      const s = await page.locator('[data-testid=runs-body] .badge').allTextContents();
      return s.length > 0 && s.every((x) => x === 'failed');
    }, 5000, 'only failed runs');
    ok(new URL(page.url()).searchParams.get('status') === 'failed', 'the filter is kept in the URL');
    await shot(page, '02-runs-failed');
    await page.selectOption('[data-testid=filter-status]', '');
    await page.selectOption('[data-testid=filter-workflow]', 'ui-approval');
    await until(async () => {
      const rows = await page.locator('[data-testid=runs-body] tr[data-run] td:nth-child(2)').allTextContents();
      return rows.length === 3 && rows.every((x) => x === 'ui-approval');
    }, 5000, 'the three ui-approval runs');
    await page.selectOption('[data-testid=filter-workflow]', '');
  });

  await check('search by run id opens the failed run', async () => {
    await page.fill('[data-testid=search]', RUNS.failed);
    await page.press('[data-testid=search]', 'Enter');
    await page.waitForURL('**/ui/runs/' + RUNS.failed);
    await page.locator('[data-testid=error-chain]').waitFor();
  });

  await check('failed run: the error with its cause chain, escaped', async () => {
    const items = await page.locator('[data-testid=error-chain] > [data-testid=error-item]').allInnerTexts();
    ok(items.length === 3, `${items.length} errors in the chain, expected 3`);
    ok(items[0].includes('PaymentDeclined') && items[0].includes('card ending 4242 declined: issuer unavailable'), 'first: ' + items[0]);
    ok(items[1].includes('caused by') && items[1].includes('GatewayError') && items[1].includes('502 <Bad Gateway>'), 'second: ' + items[1]);
    ok(items[2].includes('SocketTimeout'), 'third: ' + items[2]);
    ok(await page.locator('main bad, main img').count() === 0, 'database text became HTML');
    const input = await page.locator('[data-testid=input] pre').textContent();
    ok(input.includes('<img src=x onerror=alert(1)>'), 'the input shows the markup as text');
    ok((await page.locator('h1 .badge').textContent()) === 'failed', 'status badge');
    await shot(page, '03-run-failed');
  });

  await check('failed run: timeline bars in order, the failed step with its attempts', async () => {
    const rows = page.locator('[data-testid=timeline] .tl-row');
    const steps = await rows.evaluateAll((rs) => rs.map((r) => r.getAttribute('data-step')));
    ok(JSON.stringify(steps) === JSON.stringify(['prepare', 'authorize']), 'steps: ' + steps);
    const boxes = await page.locator('[data-testid=bar]').evaluateAll((bs) => bs.map((b) => b.getBoundingClientRect().left));
    ok(boxes[0] < boxes[1], 'bars left to right: ' + boxes);
    const note = await page.locator('.tl-row[data-step=authorize] .tl-note').textContent();
    ok(note.includes('3 attempts') && note.includes('PaymentDeclined'), 'authorize note: ' + note);
    ok(await page.locator('.tl-row[data-step=authorize] .tl-bar.error').count() === 1, 'authorize bar is red (error)');
  });

  await check('completed run: four bars in time order, the output', async () => {
    await page.goto(BASE + '/ui/runs/' + RUNS.completed);
    await page.locator('[data-testid=timeline]').waitFor();
    const steps = await page.locator('.tl-row').evaluateAll((rs) => rs.map((r) => r.getAttribute('data-step')));
    ok(JSON.stringify(steps) === JSON.stringify(['validate-cart', 'reserve-stock', 'charge-card', 'send-receipt']), 'steps: ' + steps);
    const x = await page.locator('[data-testid=bar]').evaluateAll((bs) => bs.map((b) => b.getBoundingClientRect().left));
    ok(x.every((v, i) => i === 0 || v > x[i - 1]), 'bars not left to right: ' + x);
    const w = await page.locator('[data-testid=bar]').evaluateAll((bs) => bs.map((b) => b.getBoundingClientRect().width));
    ok(w.every((v) => v >= 3), 'every bar is visible: ' + w);
    ok((await page.locator('main').innerText()).includes('shipped'), 'the output');
    ok(await page.locator('[data-testid=cancel]').isDisabled(), 'no cancel of a completed run');
    await shot(page, '04-run-completed');
  });

  await check('sleeping run: the sleep and its wake-up time', async () => {
    await page.goto(BASE + '/ui/runs/' + RUNS.sleeping);
    await page.locator('.tl-row[data-step=cool-down]').waitFor();
    const note = await page.locator('.tl-row[data-step=cool-down] .tl-note').textContent();
    ok(/sleeping until/.test(note), 'cool-down: ' + note);
    ok((await page.locator('h1 .badge').textContent()) === 'waiting', 'status waiting');
    await shot(page, '05-run-sleeping');
  });

  await check('running run: a bar that grows while it runs', async () => {
    await page.goto(BASE + '/ui/runs/' + RUNS.running);
    const bar = page.locator('[data-testid=busy-bar]');
    await bar.waitFor();
    ok((await page.locator('h1 .badge').textContent()) === 'running', 'status running');
    const w0 = await bar.evaluate((b) => b.getBoundingClientRect().width);
    ok(w0 > 100, 'the bar spans most of the timeline: ' + w0);
    ok((await page.locator('.tl-row[data-status=running] .tl-note').textContent()).includes('running for'), 'running for ...');
    await shot(page, '06-run-running');
  });

  await check('parent and child: links both ways', async () => {
    await page.goto(BASE + '/ui/runs/' + RUNS.parent);
    const link = page.locator('[data-testid=children] a').first();
    await link.waitFor();
    ok((await page.locator('main').innerText()).includes('ACME <b>Corp</b>'), 'input text with markup shown as text');
    await shot(page, '07-run-parent');
    await link.click();
    await page.locator('text=Parent run').waitFor();
    await page.locator('.facts a[href="/ui/runs/' + RUNS.parent + '"]').waitFor();
    ok((await page.locator('h1 .badge').textContent()) === 'completed', 'the child completed');
  });

  await check('waiting run: what it waits for', async () => {
    await page.goto(BASE + '/ui/runs/' + RUNS.to_cancel);
    const note = await page.locator('.tl-row[data-step=await-approval] .tl-note').textContent();
    ok(note.includes('waiting for signal') && note.includes('approve-2077'), 'wait: ' + note);
  });

  await check('cancel needs the token: refused without it and with a wrong one', async () => {
    ok(await page.evaluate(() => sessionStorage.getItem('stepkit.ui.token')) === null, 'no token at first');
    await page.click('[data-testid=cancel]');
    await page.locator('[data-testid=confirm]').waitFor({ state: 'visible' });
    await shot(page, '08-cancel-confirm');
    await page.fill('#confirm-reason', 'duplicate order');
    await page.click('#confirm-ok');
    // 401: the token dialog opens.
    await page.locator('[data-testid=token-dialog]').waitFor({ state: 'visible' });
    const text = await page.locator('#token-text').textContent();
    ok(text.includes('valid token is required'), 'token dialog says why: ' + text);
    await page.fill('#token-input', 'not-the-token-0000');
    await page.click('#token-save');
    await page.locator('#toast.show.bad').waitFor();
    ok((await page.locator('#toast').textContent()).includes('Cancel failed'), 'a wrong token fails');
    ok((await page.locator('h1 .badge').textContent()) === 'waiting', 'still waiting');
  });

  await check('cancel with the token turns the status to cancelled', async () => {
    await page.click('[data-testid=token-btn]');
    await page.locator('[data-testid=token-dialog]').waitFor({ state: 'visible' });
    await page.fill('#token-input', TOKEN);
    await page.click('#token-save');
    ok((await page.locator('[data-testid=mode]').textContent()) === 'token set', 'mode shows the token');
    await page.click('[data-testid=cancel]');
    await page.locator('[data-testid=confirm]').waitFor({ state: 'visible' });
    await page.fill('#confirm-reason', 'duplicate order');
    await page.click('#confirm-ok');
    await until(async () => (await page.locator('h1 .badge').textContent()) === 'cancelled', 5000, 'status cancelled');
    const err = await page.locator('[data-testid=error-chain]').innerText();
    ok(err.includes('CancelledError') && err.includes('duplicate order'), 'cancel error: ' + err);
    ok((await page.locator('main').innerText()).includes('Cancel reason'), 'the reason is shown');
    const wait = await page.locator('.tl-row[data-step=await-approval] .tl-note').textContent();
    ok(wait.includes('stopped (run cancelled) while waiting for signal'), 'the wait ended with the run: ' + wait);
    await shot(page, '09-run-cancelled');
  });

  await check('retry of the cancelled run (confirmed) makes it wait again', async () => {
    ok(!(await page.locator('[data-testid=retry]').isDisabled()), 'retry is offered');
    await page.click('[data-testid=retry]');
    await page.locator('[data-testid=confirm]').waitFor({ state: 'visible' });
    await page.click('#confirm-ok');
    await until(async () => (await page.locator('h1 .badge').textContent()) === 'waiting', 10000, 'waiting again');
    ok((await page.locator('main').innerText()).includes('Earlier ends'), 'the earlier end is listed');
    await shot(page, '10-run-retried');
  });

  await check('workflows: counts, rates, triggers and cron', async () => {
    await page.goto(BASE + '/ui/workflows');
    const row = (w) => page.locator(`tr[data-workflow="${w}"]`);
    await row('ui-payment').waitFor();
    const pay = await row('ui-payment').locator('td').allInnerTexts();
    ok(pay[5] === '1', 'ui-payment failed in the last hour: ' + pay[5]);
    ok(pay[7] === '100%', 'ui-payment failure rate: ' + pay[7]);
    const crunch = await row('ui-crunch').innerText();
    ok(crunch.includes('cron: */5 * * * *') && crunch.includes('next'), 'ui-crunch cron: ' + crunch);
    ok((await row('ui-crunch').locator('td').nth(2).innerText()) === '1', 'one ui-crunch running');
    ok((await row('ui-checkout').innerText()).includes('event: order.placed'), 'ui-checkout event trigger');
    const appr = await row('ui-approval').locator('td').allInnerTexts();
    ok(appr[3] === '2', 'two ui-approval runs waiting: ' + appr[3]);
    await shot(page, '11-workflows');
  });

  await check('queue: two charts of the last hour', async () => {
    await page.goto(BASE + '/ui/queue');
    await until(async () => (await page.locator('[data-testid=chart-ready] canvas').count()) === 1, 20000, 'the ready chart');
    ok(await page.locator('[data-testid=chart-age] canvas').count() === 1, 'the age chart');
    const legend = await page.locator('[data-testid=chart-ready] .u-legend').innerText();
    ok(legend.includes('ui-checkout'), 'legend: ' + legend);
    ok((await page.locator('[data-testid=queue-note]').textContent()).includes('samples'), 'note');
    await shot(page, '12-queue');
  });

  await check('read-only API: a POST without the token is refused, the run stays', async () => {
    const r = await page.evaluate(async (id) => {
      const res = await fetch('/ui/api/runs/' + id + '/cancel', { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: '{}' });
      return res.status;
    }, RUNS.approval);
    ok(r === 401, 'status ' + r);
    await page.goto(BASE + '/ui/runs/' + RUNS.approval);
    ok((await page.locator('h1 .badge').textContent()) === 'waiting', 'still waiting');
  });

  await check('no console errors, no CSP violations, no requests elsewhere, no alerts', async () => {
    const real = problems.filter((p) => !/status of 401/.test(p));
    ok(real.length === 0, real.length + ' problems: ' + real.slice(0, 5).join(' | '));
  });
} finally {
  await context.close();
  rmSync(profile, { recursive: true, force: true });
}

console.log(`ui-test: ${passed} passed, ${failures} failed`);
process.exit(failures ? 1 : 0);
