// The serve page end to end in headless Chromium (run by .ci/run; see README.md there):
// open the page, draw a stroke with the mouse, wait for the prediction and the saliency map, and
// keep a screenshot.
//
//   NODE_PATH=DIR/node_modules node draw-digit.cjs URL SCREENSHOT.png [EXPECTED_DIGIT]
//
// playwright-core drives Debian's /usr/bin/chromium (CHROMIUM overrides it). Exits 1, saying
// why, if the page shows no prediction, shows an error, or predicts another digit than expected.
"use strict";
const { chromium } = require("playwright-core");

async function main() {
  const [url, screenshot, expected] = process.argv.slice(2);
  if (!url || !screenshot) {
    throw new Error("usage: node draw-digit.cjs URL SCREENSHOT.png [EXPECTED_DIGIT]");
  }
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
      "--disable-background-networking", "--disable-component-update", "--disable-sync"],
  });
  try {
    const page = await browser.newPage({ viewport: { width: 1100, height: 560 } });
    const problems = [];
    page.on("pageerror", (error) => problems.push("page error: " + error.message));
    page.on("console", (message) => { if (message.type() === "error") problems.push("console: " + message.text()); });
    await page.goto(url);
    await page.waitForSelector("body[data-ready='true']", { timeout: 15000 });
    const method = await page.$eval("#method", (menu) => menu.value);
    // A "1": one firm vertical stroke down the middle of the 280 x 280 pad.
    const pad = await page.$("#pad");
    const box = await pad.boundingBox();
    const x = box.x + box.width * 0.52;
    await page.mouse.move(x, box.y + box.height * 0.15);
    await page.mouse.down();
    for (let step = 1; step <= 20; step += 1) {
      await page.mouse.move(x - step * 0.6, box.y + box.height * (0.15 + 0.7 * step / 20));
    }
    await page.mouse.up();
    // the answer to the stroke's end (answers may also have come while drawing)
    await page.waitForFunction(() => Number(document.body.dataset.answers || 0) >= 1, null, { timeout: 30000 });
    await page.waitForTimeout(300);
    await page.waitForFunction(() => !document.getElementById("status").textContent.startsWith("loading"));
    const prediction = (await page.textContent("#prediction")).trim();
    const top = await page.$$eval("#top li", (items) => items.map((item) => item.textContent.trim()));
    const status = (await page.textContent("#status")).trim();
    const caption = (await page.textContent("#caption")).trim();
    const heatPixels = await page.$eval("#view", (canvas) => {
      const data = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height).data;
      let coloured = 0;
      for (let index = 0; index < data.length; index += 4) {
        if (data[index] !== data[index + 1] || data[index + 1] !== data[index + 2]) coloured += 1;
      }
      return coloured;
    });
    await page.screenshot({ path: screenshot });
    console.log(JSON.stringify({ method, prediction, top, status, caption, heatPixels, screenshot }));
    if (problems.length) throw new Error(problems.join("; "));
    if (!/^\d$/.test(prediction)) throw new Error("no digit predicted; the page says: " + status);
    if (top.length !== 3) throw new Error("expected the top 3 classes, the page shows " + top.length);
    if (method && heatPixels === 0) throw new Error("no saliency map was drawn for method " + method);
    if (expected !== undefined && prediction !== expected) {
      throw new Error("the stroke of a 1 was read as " + prediction + " (expected " + expected + ")");
    }
  } finally {
    await browser.close();
  }
}

main().catch((error) => {
  console.error("FAIL: " + error.message);
  process.exit(1);
});
