// The operator page in Debian's headless Chromium, as an operator uses it
// (driven by tests/tools/test_serve.c through playwright-core):
//   node browser.js URL SCREENSHOT.png CLASS IMAGE...
// posts the images to /v1/infer, waits for them on the page, clicks CLASS for
// the newest uncertain sample, waits for the store's count of CLASS to grow
// by one, presses "Retrain", waits for the new model, swaps it in, and keeps
// a screenshot. Prints one JSON line with what it saw; exit 0 when all held.
"use strict";
const fs = require("fs");
const path = require("path");
const { chromium } = require(path.join(process.env.AIBOX_PLAYWRIGHT, "node_modules", "playwright-core"));

const [url, shot, cls, ...images] = process.argv.slice(2);
const seen = { posted: 0 };

async function main() {
  const browser = await chromium.launch({ executablePath: process.env.AIBOX_CHROMIUM || "/usr/bin/chromium",
                                          args: ["--no-sandbox", "--disable-gpu"] });
  try {
    const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
    const errors = [];
    page.on("pageerror", (e) => errors.push(String(e)));
    await page.goto(url, { waitUntil: "load" });
    for (const f of images) {
      const r = await fetch(url + "v1/infer?name=" + encodeURIComponent(path.basename(f)),
                            { method: "POST", headers: { "Content-Type": "application/octet-stream" }, body: fs.readFileSync(f) });
      if (!r.ok) throw new Error("POST /v1/infer " + f + ": " + r.status + " " + (await r.text()));
      seen.posted++;
    }
    await page.waitForFunction((n) => document.querySelectorAll("#results .res").length >= n, images.length, { timeout: 20000 });
    seen.results_shown = await page.locator("#results .res").count();
    seen.verdicts = await page.locator("#results .res .v").allTextContents();
    const count = async () => Number(await page.locator(`#store td[data-class="${cls}"]`).textContent());
    await page.waitForSelector(`#store td[data-class="${cls}"]`, { timeout: 10000 });
    seen.store_before = await count();
    await page.waitForSelector("#queue .item button", { timeout: 10000 });
    seen.queue_before = await page.locator("#queue .item").count();
    const item = page.locator("#queue .item").first();
    seen.labelled_sample = Number(await item.getAttribute("data-id"));
    await item.locator(`button[data-label="${cls}"]`).click();
    await page.waitForFunction(([c, n]) => Number(document.querySelector(`#store td[data-class="${c}"]`).textContent) === n,
                               [cls, seen.store_before + 1], { timeout: 10000 });
    seen.store_after = await count();
    const gen0 = (await (await fetch(url + "v1/health")).json()).generation;
    await page.click("#retrain");
    await page.waitForSelector("#swap:not([hidden])", { timeout: 180000 });
    seen.candidate_shown = await page.locator("#models img").count();
    seen.train_status = await page.locator("#train-status").textContent();
    await page.click("#swap");
    await page.waitForFunction(() => document.querySelector("#train-status").textContent.includes("in use"), null, { timeout: 30000 });
    seen.generation_before = gen0;
    seen.generation_after = (await (await fetch(url + "v1/health")).json()).generation;
    await page.waitForTimeout(1500); // a poll of the page with the new model
    await page.screenshot({ path: shot, fullPage: true });
    seen.screenshot = shot;
    seen.page_errors = errors;
    const ok = seen.results_shown >= images.length && seen.store_after === seen.store_before + 1 &&
               seen.generation_after === gen0 + 1 && errors.length === 0;
    console.log(JSON.stringify(seen));
    process.exitCode = ok ? 0 : 1;
  } finally {
    await browser.close();
  }
}
main().catch((e) => { console.log(JSON.stringify(Object.assign(seen, { error: String(e && e.stack || e) }))); process.exitCode = 1; });
