// The Cockpit page in headless Chromium against real cockpit-ws and berthd. Started by
// service/tests/cockpit.rs, which owns berthd and the registry and serves the requests this
// script sends on BERTH_CONTROL ("publish 2", "cli-update", "kill-berthd", ...).
// Prints one line per step; exits 0 when every step passed.
import { chromium } from "playwright-core";
import fs from "node:fs";
import net from "node:net";
import path from "node:path";
import readline from "node:readline";

const env = name => {
    const v = process.env[name];
    if (!v) throw new Error(`${name} is not set (run through service/tests/cockpit.rs)`);
    return v;
};
const BASE = env("BERTH_COCKPIT_URL");
const SHOTS = env("BERTH_SHOTS");
const OPERATOR = env("BERTH_OPERATOR");
const VIEWER = env("BERTH_VIEWER");
const PASSWORD = env("BERTH_WEB_PASSWORD");
/// How long one on-screen condition may take on a slow 2-core machine.
const PATIENCE = 90_000;
const IFRAME = 'iframe[name="cockpit1:localhost/berth"]';

const t0 = Date.now();
const log = msg => console.log(`[cockpit ${((Date.now() - t0) / 1000).toFixed(1)}s] ${msg}`);

/// The harness's control socket: one request line, one answer line.
class Control {
    static async connect(socketPath) {
        const socket = net.createConnection(socketPath);
        await new Promise((resolve, reject) => { socket.once("connect", resolve); socket.once("error", reject) });
        const c = new Control();
        c.socket = socket;
        c.lines = readline.createInterface({ input: socket })[Symbol.asyncIterator]();
        return c;
    }

    async request(line) {
        this.socket.write(line + "\n");
        const { value } = await this.lines.next();
        if (!value || !value.startsWith("ok")) throw new Error(`control ${line}: ${value}`);
        return value.slice(3);
    }
}

/// A logged-in Cockpit session showing the page: `frame` is the page inside the shell.
async function login(browser, user, locale) {
    const context = await browser.newContext({ viewport: { width: 1280, height: 1000 }, locale });
    const page = await context.newPage();
    page.on("pageerror", e => log(`  [pageerror] ${e.message}`));
    page.on("console", m => {
        if (m.type() === "error" || m.text().startsWith("berth:")) log(`  [console ${m.type()}] ${m.text()}`);
    });
    await page.goto(BASE + "/berth");
    await page.fill("#login-user-input", user);
    await page.fill("#login-password-input", PASSWORD);
    await page.click("#login-button");
    await page.waitForSelector(IFRAME, { timeout: PATIENCE, state: "attached" });
    const frame = page.frameLocator(IFRAME);
    await frame.locator("#status, #unreachable").first().waitFor({ timeout: PATIENCE });
    return { context, page, frame };
}

/// Cockpit's own "Limited access" button and its password dialog (sudo underneath).
async function turnOnAdministrativeAccess(session) {
    const { page, frame } = session;
    await page.locator("#super-user-indicator button").click();
    const dialog = page.locator(".pf-v6-c-modal-box");
    await dialog.locator("input[type=password]").fill(PASSWORD);
    await dialog.locator("button.pf-m-primary").click();
    await page.locator("#super-user-indicator", { hasText: "Administrative access" }).waitFor({ timeout: PATIENCE });
    // The page reloads with the privileged bridge: its buttons appear.
    await frame.locator("#status .berth-actions").waitFor({ timeout: PATIENCE });
}

async function shot(session, name) {
    await session.page.screenshot({ path: path.join(SHOTS, name + ".png") });
}

const state = (frame, s) => frame.locator(`#status-title[data-state="${s}"]`).waitFor({ timeout: PATIENCE });
const text = async locator => (await locator.textContent()).trim();
function expect(cond, what) {
    if (!cond) throw new Error(what);
}
async function waitRow(frame, key, value) {
    await frame.locator(`#system [data-row="${key}"]`, { hasText: new RegExp(`^${value}$`) }).waitFor({ timeout: PATIENCE });
}

/// Samples the progress bar until the transaction ends: the values it showed, in order.
async function watchProgress(frame) {
    const bar = frame.locator("#progress [role=progressbar]");
    const seen = [];
    const deadline = Date.now() + 5 * PATIENCE;
    while (Date.now() < deadline) {
        if (await frame.locator('#status-title[data-state="running"]').count() === 0) break;
        const now = await bar.getAttribute("aria-valuenow", { timeout: 2000 }).catch(() => null);
        if (now !== null && seen[seen.length - 1] !== Number(now)) seen.push(Number(now));
        await new Promise(r => setTimeout(r, 150));
    }
    return seen;
}

const steps = [];
const step = (name, fn) => steps.push({ name, fn });
const ctx = {};

step("the operator turns on administrative access; the actions appear", async () => {
    ctx.op = await login(ctx.browser, OPERATOR, "en-US");
    await ctx.op.frame.locator("#limited-access").waitFor();
    await turnOnAdministrativeAccess(ctx.op);
    expect(await ctx.op.frame.locator("#limited-access").count() === 0, "still says limited");
    await ctx.op.frame.locator("#check").waitFor();
    await shot(ctx.op, "up-to-date");
});

step("check finds the new version with its download size", async () => {
    const f = ctx.op.frame;
    await ctx.control.request("publish big");
    await f.locator("#check").click();
    await state(f, "update-available");
    const description = await text(f.locator("#status-description"));
    expect(/Version 2 · 2\d\.\d MB to download/.test(description), `description: ${description}`);
    const checked = await text(f.locator('#system [data-row="cockpit-last-checked"]'));
    expect(checked !== "Not checked yet", "last checked not shown");
    await shot(ctx.op, "update-available");
});

step("a user without sudo sees the update and no button that could only fail", async () => {
    const s = await login(ctx.browser, VIEWER, "en-US");
    await state(s.frame, "update-available");
    expect(await text(s.frame.locator("#status-title")) === "Update available", "title");
    await waitRow(s.frame, "row-version", "1");
    // The test sandbox's signature policy accepts any image: installed unverified.
    await waitRow(s.frame, "row-signature", "Not verified");
    await s.frame.locator("#limited-access").waitFor();
    for (const id of ["check", "update", "update-restart", "download", "rollback", "cleanup", "switch-image", "reset"]) {
        expect(await s.frame.locator(`#${id}`).count() === 0, `#${id} shown with limited access`);
    }
    expect(await s.frame.locator(".berth-pin").count() === 0, "pin buttons shown");
    expect(await s.frame.locator("#policy").isDisabled(), "policy editable");
    await shot(s, "limited-access");
    await s.context.close();
});

step("install shows a moving progress bar and ends in restart needed", async () => {
    const f = ctx.op.frame;
    await f.locator("#update").click();
    await state(f, "running");
    await f.locator("#progress").waitFor();
    await f.locator("#cancel").waitFor();
    // A screenshot mid-download, once some bytes are in.
    await f.locator("#progress", { hasText: / of / }).waitFor({ timeout: PATIENCE });
    await shot(ctx.op, "progress");
    const seen = await watchProgress(f);
    await state(f, "needs-reboot");
    const moving = seen.filter(v => v > 0 && v < 100);
    expect(moving.length >= 2, `progress values seen: ${seen}`);
    expect(moving.every((v, i) => i === 0 || v >= moving[i - 1]), `progress went back: ${seen}`);
    expect(await text(f.locator("#status-title")) === "Restart to finish updating", "restart title");
    const staged = f.locator('#deployments [data-version="2"] [data-role="role-staged"]');
    await staged.waitFor();
    await shot(ctx.op, "restart-needed");
});

step("restart (emulated) boots version 2", async () => {
    const f = ctx.op.frame;
    await f.locator("#restart").click();
    await waitRow(f, "row-version", "2");
    expect(await ctx.control.request("booted-version") === "2", "berthd says another version");
});

step("roll back, confirmed, returns to version 1 after the restart", async () => {
    const f = ctx.op.frame;
    await f.locator("#rollback").click();
    const dialog = f.locator("#confirm-dialog");
    await dialog.waitFor();
    const body = await text(dialog);
    expect(body.includes("Roll back to version 1?"), `dialog: ${body}`);
    expect(body.includes("/etc") && body.includes("/var"), `dialog says nothing of the state: ${body}`);
    await shot(ctx.op, "rollback-dialog");
    await f.locator("#confirm").click();
    await state(f, "needs-reboot");
    await f.locator("#restart").click();
    await waitRow(f, "row-version", "1");
    expect(await ctx.control.request("booted-version") === "1", "berthd says another version");
});

step("an invalid image reference is refused inline with berthd's reason", async () => {
    const f = ctx.op.frame;
    await f.locator("#switch-image").fill("Not A/Valid Reference!");
    await f.locator("#switch-button").click();
    const error = f.locator('#switch-error[data-error="org.berth.Berth1.Error.InvalidReference"]');
    await error.waitFor({ timeout: PATIENCE });
    const words = await text(error);
    expect(words.startsWith("Not a valid image name:"), `error: ${words}`);
    expect(await f.locator("#switch-image[aria-invalid=true]").count() === 1, "field not marked invalid");
    await shot(ctx.op, "switch-invalid");
});

step("a failed switch is explained in the status card, and Try Again recovers", async () => {
    const f = ctx.op.frame;
    const image = await text(f.locator('#system [data-row="row-image"]'));
    await f.locator("#switch-image").fill(image.replace("berth/demo:1", "berth/missing:1"));
    await f.locator("#switch-button").click();
    await state(f, "error");
    expect(await text(f.locator("#status-title")) === "The system image was not found", "error title");
    await shot(ctx.op, "error");
    // Trying again checks: the image followed (demo:1) has version 2 again, the rolled-back one.
    await f.locator("#try-again").click();
    await state(f, "update-available");
});

step("pin and unpin a version", async () => {
    const f = ctx.op.frame;
    const row = f.locator('#deployments [data-version="1"]');
    await row.locator(".berth-pin", { hasText: /^Pin$/ }).click();
    await row.locator('[data-role="cockpit-pinned"]').waitFor({ timeout: PATIENCE });
    await row.locator(".berth-pin", { hasText: /^Unpin$/ }).click();
    await row.locator('[data-role="cockpit-pinned"]').waitFor({ state: "detached", timeout: PATIENCE });
});

step("the automatic update policy is changed by the administrator", async () => {
    const f = ctx.op.frame;
    await f.locator("#policy").selectOption("check");
    await f.locator("#policy-description", { hasText: "you decide when to download" }).waitFor({ timeout: PATIENCE });
    expect(await ctx.control.request("automatic-updates") === "check", "berthd has another policy");
    await f.locator('[data-notice="toast-policy"]', { hasText: "Automatic updates: Check only" }).waitFor({ timeout: PATIENCE });
    await f.locator("#policy").selectOption("off");
    await f.locator("#policy-description", { hasText: "only looked for when you ask" }).waitFor({ timeout: PATIENCE });
    expect(await ctx.control.request("automatic-updates") === "off", "berthd has another policy");
});

step("clean up says when old versions are gone", async () => {
    const f = ctx.op.frame;
    await f.locator("#cleanup").click();
    await f.locator('[data-notice="toast-cleaned-up"]').waitFor({ timeout: PATIENCE });
});

step("a download is cancelled mid-way and nothing changes", async () => {
    const f = ctx.op.frame;
    await ctx.control.request("publish big2");
    await f.locator("#check").click();
    await f.locator("#download").waitFor({ timeout: PATIENCE });
    await f.locator("#download").click();
    await state(f, "running");
    await f.locator("#progress", { hasText: / of / }).waitFor({ timeout: PATIENCE });
    await f.locator("#cancel").click();
    await f.locator('[data-notice="toast-cancelled"]').waitFor({ timeout: PATIENCE });
    await state(f, "update-available");
    await waitRow(f, "row-version", "1");
    expect(await f.locator('#deployments [data-role="role-staged"]').count() === 0, "something was staged");
});

step("automatic updates show the schedule, what holds them back, and their events", async () => {
    const f = ctx.op.frame;
    await f.locator("#policy").selectOption("download");
    await f.locator("#policy-description", { hasText: "downloaded in the background" }).waitFor({ timeout: PATIENCE });
    // berthd's scheduler steps at once, finds big2 and is held back by the free-space floor.
    await ctx.control.request("automatic-held");
    const held = f.locator("#automatic-held", { hasText: "There is not enough free disk space." });
    await held.waitFor({ timeout: PATIENCE });
    const detail = await text(f.locator("#automatic-held-detail"));
    expect(detail.includes("MB free") && detail.includes("needed"), `berthd's words: ${detail}`);
    await f.locator("#automatic-event", { hasText: "Automatic update held back: There is not enough free disk space." })
            .waitFor({ timeout: PATIENCE });
    const last = await text(f.locator("#automatic-last"));
    expect(last.startsWith("Last checked") && last.includes("held back"), `last step: ${last}`);
    expect((await text(f.locator("#automatic-next"))).startsWith("Next step "), "no next step shown");
    await state(f, "update-available");
    await f.locator("#automatic").scrollIntoViewIfNeeded();
    await shot(ctx.op, "automatic-held-back");
    // The floor lifted: it downloads by itself and says so.
    await ctx.control.request("automatic-free");
    await f.locator("#automatic-event", { hasText: /Version .* was downloaded/ }).waitFor({ timeout: PATIENCE });
    await held.waitFor({ state: "detached", timeout: PATIENCE });
    await state(f, "update-ready").catch(async e => {
        const t = f.locator("#status-title");
        throw new Error(`${e.message}; the page: ${await t.getAttribute("data-state")} ${await text(t)}`);
    });
    await f.locator("#automatic").scrollIntoViewIfNeeded();
    await shot(ctx.op, "automatic-downloaded");
    await ctx.control.request("automatic-quiet");
});

step("an update started with the CLI shows up live", async () => {
    const f = ctx.op.frame;
    const before = (await f.locator("#status").getAttribute("data-followed")).split(" ").filter(Boolean);
    await ctx.control.request("publish 3");
    await ctx.control.request("cli-update");
    await ctx.control.request("cli-wait");
    await state(f, "needs-reboot");
    const after = (await f.locator("#status").getAttribute("data-followed")).split(" ").filter(Boolean);
    expect(after.length === before.length + 1, `transactions followed: ${before} -> ${after}`);
    const description = await text(f.locator("#status-description"));
    expect(description === "Version 3 is installed and starts after the restart.", description);
});

step("berthd stopping shows a clear state, and the page comes back with it", async () => {
    const f = ctx.op.frame;
    await ctx.control.request("kill-berthd");
    await f.locator("#unreachable").waitFor({ timeout: PATIENCE });
    await shot(ctx.op, "unreachable");
    await ctx.control.request("start-berthd");
    await state(f, "needs-reboot");
});

step("factory reset asks first, saying what is discarded and what is kept", async () => {
    const f = ctx.op.frame;
    const before = (await f.locator("#status").getAttribute("data-followed")).split(" ").filter(Boolean);
    await f.locator("#reset").click();
    const dialog = f.locator("#confirm-dialog");
    await dialog.waitFor();
    const body = await text(dialog);
    expect(body.includes("Discarded:") && body.includes("Kept:"), `dialog: ${body}`);
    await shot(ctx.op, "reset-dialog");
    await f.locator("#confirm-cancel").click();
    await dialog.waitFor({ state: "detached" });
    await f.locator("#reset").click();
    await f.locator("#confirm").click();
    // The reset deployment (version 1, a new stateroot) starts next; the update to 3 that
    // waited is no longer staged.
    await f.locator('#status-title[data-state="needs-reboot"]', { hasText: /^Restart to finish$/ }).waitFor({ timeout: PATIENCE });
    await f.locator('#deployments [data-version="1"] [data-role="role-staged"]').waitFor({ timeout: PATIENCE });
    // The first transaction of the restarted berthd (its paths count from 1 again) was followed.
    const after = (await f.locator("#status").getAttribute("data-followed")).split(" ").filter(Boolean);
    expect(after.length === before.length + 1, `transactions followed: ${before} -> ${after}`);
    await ctx.op.context.close();
});

step("the page speaks German to a German browser", async () => {
    const s = await login(ctx.browser, OPERATOR, "de-DE");
    const f = s.frame;
    await f.locator("#limited-access", { hasText: "Änderungen erfordern Administratorrechte" }).waitFor();
    await f.locator("#status-title", { hasText: "Neu starten" }).waitFor();
    expect(await text(f.locator("#versions h2")) === "Versionen auf diesem System", "versions title");
    await shot(s, "german");
    // The scheduler's state in German (policy "download", from the steps before).
    const next = await text(f.locator("#automatic-next"));
    expect(next.startsWith("Nächster Schritt "), `next step: ${next}`);
    await f.locator("#automatic").scrollIntoViewIfNeeded();
    await shot(s, "german-automatic");
    await s.context.close();
});

step("local changes to /usr are shown: unlocked, and what the drift check found", async () => {
    const s = await login(ctx.browser, VIEWER, "en-US");
    // The image as built: no row, or the automatic drift check's clean verdict.
    const rows = s.frame.locator('#system [data-row="row-modifications"]');
    const shown = await rows.count() === 0 ? "" : await text(rows);
    expect(shown === "" || shown.includes("Matches the image"), `row for the image as built: ${shown}`);
    await ctx.control.request("unlock-and-modify");
    await waitRow(s.frame, "row-modifications", "Unlocked until the next restart · Differs from the image: 1 file");
    await shot(s, "local-changes");
    await s.context.close();
});

async function main() {
    fs.mkdirSync(SHOTS, { recursive: true });
    ctx.control = await Control.connect(env("BERTH_CONTROL"));
    ctx.browser = await chromium.launch({
        executablePath: "/usr/bin/chromium",
        headless: true,
        args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
               "--disable-background-networking", "--disable-component-update", "--disable-sync"],
    });
    let failed = 0;
    for (const [index, { name, fn }] of steps.entries()) {
        // BERTH_COCKPIT_STEPS=3 stops after the third step (when working on the start).
        if (process.env.BERTH_COCKPIT_STEPS && index >= Number(process.env.BERTH_COCKPIT_STEPS)) break;
        try {
            await fn();
            log(`ok: ${name}`);
        } catch (e) {
            failed += 1;
            log(`FAILED: ${name}: ${e.message.split("\n")[0]}`);
            for (const c of ctx.browser.contexts()) {
                for (const [i, p] of c.pages().entries()) {
                    await p.screenshot({ path: path.join(SHOTS, `failed-step${index + 1}-${i}.png`) }).catch(() => {});
                }
            }
            break; // later steps build on this one's state
        }
    }
    await ctx.browser.close();
    ctx.control.socket.end();
    log(failed ? "some steps failed" : `all ${steps.length} steps passed`);
    process.exit(failed ? 1 : 0);
}

main().catch(e => {
    console.error(e);
    process.exit(1);
});
