// The IP tracker in a real browser: node ip-tracker.mjs URL SCREENSHOT.PNG
// Checks the page shows IP, browser, instance, a counting duration and a QR code, and
// that a second browser context appears in the first one's live list within 2 s.
import { chromium } from "playwright-core";

const [url, screenshot] = process.argv.slice(2);
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"],
});
const fail = (why) => { console.error(`FAIL: ${why}`); process.exitCode = 1; };
try {
  const first = await (await browser.newContext()).newPage();
  await first.goto(url);
  await first.waitForFunction(() => document.getElementById("status").textContent === "live", null, { timeout: 10000 });
  const text = async (id) => (await first.textContent(`#${id}`)).trim();
  const shown = { ip: await text("ip"), browser: await text("browser"), os: await text("os"),
                  instance: await text("instance"), zone: await text("zone") };
  if (!/^\d+\.\d+\.\d+\.\d+$/.test(shown.ip)) fail(`IP ${shown.ip}`);
  if (!/Chrom/i.test(shown.browser)) fail(`browser ${shown.browser}`);
  if (!/^i-[0-9a-f]{17}$/.test(shown.instance)) fail(`instance ${shown.instance}`);
  const qr = await first.$eval("#qr", (img) => img.complete && img.naturalWidth > 0);
  if (!qr) fail("the QR code did not load");
  const before = await text("duration");
  await first.waitForTimeout(2200);
  const after = await text("duration");
  if (before === after) fail(`the duration does not count: ${before} -> ${after}`);

  const second = await (await browser.newContext()).newPage();
  await second.goto(url);
  await second.waitForFunction(() => document.getElementById("status").textContent === "live", null, { timeout: 10000 });
  const t0 = Date.now();
  try {
    await first.waitForFunction(() => document.querySelectorAll("#users tr").length >= 2, null, { timeout: 2000 });
  } catch {
    fail("the second browser did not appear in the first one's list within 2 s");
  }
  const appeared = Date.now() - t0;
  await first.screenshot({ path: screenshot, fullPage: true });
  console.log(JSON.stringify({ ...shown, qr, before, after, second_appeared_ms: appeared }));
} finally {
  await browser.close();
}
