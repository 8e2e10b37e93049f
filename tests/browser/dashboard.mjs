// The dashboard in a real browser: node dashboard.mjs URL SCREENSHOT.PNG
// URL carries the control token in its fragment, as `bellows dashboard` prints it.
// Checks that instances, the topology and the DynamoDB tables show, that the request
// chart moves while load runs, and that setting desired capacity from the page launches an instance that
// appears in the table.
import { chromium } from "playwright-core";

const [url, screenshot] = process.argv.slice(2);
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"],
});
const fail = (why) => { console.error(`FAIL: ${why}`); process.exitCode = 1; };
const errors = [];
try {
  const page = await (await browser.newContext({ viewport: { width: 1400, height: 1000 } })).newPage();
  page.on("pageerror", (e) => errors.push(String(e)));
  page.on("console", (m) => { if (m.type() === "error") errors.push(m.text()); });
  await page.goto(url);
  await page.waitForFunction(() => document.getElementById("live").textContent === "live", null, { timeout: 10000 });
  await page.waitForFunction(() => document.querySelectorAll("#instances tbody tr").length >= 1, null, { timeout: 10000 });
  const before = await page.$$eval("#instances tbody tr", (rows) => rows.length);
  if (!(await page.$("#topology [data-listener]"))) fail("no listener in the topology");
  if (!(await page.$("#topology [data-target-group] .chip"))) fail("no target in the topology");
  // The DynamoDB table the test made, with its key, billing and two items.
  try {
    await page.waitForFunction(() => {
      const row = document.querySelector('#tables tr[data-table="dash-orders"]');
      return row && row.children[3].textContent === "2";
    }, null, { timeout: 10000 });
    const cells = await page.$$eval('#tables tr[data-table="dash-orders"] td', (tds) => tds.map((t) => t.textContent));
    if (cells[1] !== "id (S)" || cells[2] !== "on demand") fail(`the table's row: ${JSON.stringify(cells)}`);
  } catch {
    fail(`the table dash-orders with 2 items is not listed: ${await page.textContent("#tables")}`);
  }
  const auth = await page.textContent("#auth");
  if (auth !== "changes enabled") fail(`the token from the link was not taken: ${auth}`);
  if (page.url().includes("token=")) fail("the token stayed in the address bar");

  // The request chart: its newest non-empty second moves forward and counts requests.
  const newest = () => page.evaluate(() => {
    const p = window.bellows.plots[0].plot;
    if (!p) return { t: 0, max: 0 };
    const [xs, ...ys] = p.data;
    let t = 0, max = 0;
    for (const y of ys) for (let i = 0; i < xs.length; i++) if (y[i] !== null) { t = Math.max(t, xs[i]); max = Math.max(max, y[i]); }
    return { t, max };
  });
  await page.waitForFunction(() => window.bellows.plots[0].plot !== null, null, { timeout: 10000 });
  const first = await newest();
  await page.waitForTimeout(3000);
  const second = await newest();
  if (!(second.t > first.t)) fail(`the request chart did not move: ${JSON.stringify([first, second])}`);
  if (!(second.max > 0)) fail(`the request chart shows no requests: ${JSON.stringify(second)}`);

  // Set desired from the page, confirm, and see the new instance in the table.
  const group = page.locator(".group").first();
  const input = group.locator("input[type=number]").first();
  const desired = Number(await input.inputValue());
  await input.fill(String(desired + 1));
  await group.locator("button.set-desired").click();
  await page.click("#confirm-ok");
  const t0 = Date.now();
  try {
    await page.waitForFunction((n) => document.querySelectorAll("#instances tbody tr").length > n, before, { timeout: 15000 });
  } catch {
    fail(`no new instance in the table after setting desired to ${desired + 1}`);
  }
  const appeared = Date.now() - t0;

  // Fail a zone from the topology, confirm, and see it shown in an outage.
  const zone = page.locator('#topology .zone[data-zone="zone-b"]');
  await zone.locator("button.danger").click();
  await page.click("#confirm-ok");
  try {
    await page.waitForFunction(() => {
      const z = document.querySelector('#topology .zone[data-zone="zone-b"]');
      return z && z.classList.contains("outage") && z.textContent.includes("restore");
    }, null, { timeout: 10000 });
  } catch {
    fail("zone-b is not shown in an outage after failing it from the page");
  }

  // An investigation from the page: a report, with the hypotheses' evidence.
  await page.click("#investigate");
  await page.waitForFunction(() => {
    const r = document.getElementById("report").textContent;
    return r.includes("window from") || r.includes("failed");
  }, null, { timeout: 10000 });
  const report = await page.textContent("#report");
  if (!report.includes("window from")) fail(`the investigation did not show: ${report}`);
  await page.waitForFunction(() => document.querySelectorAll("#audit li").length > 0, null, { timeout: 5000 });
  await page.waitForTimeout(1500);
  // The header is sticky: at the top, it stays at the top of the picture.
  await page.evaluate(() => window.scrollTo(0, 0));
  await page.screenshot({ path: screenshot, fullPage: true });
  if (errors.length) fail(`errors in the page: ${errors.join("; ")}`);
  console.log(JSON.stringify({ before, desired: desired + 1, appeared_ms: appeared, chart: second }));
} finally {
  await browser.close();
}
