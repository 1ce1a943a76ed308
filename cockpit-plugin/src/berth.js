/* global cockpit */
// berthd over the system bus: the Manager's properties, the running transaction's progress,
// the deployment list, and the calls. All through cockpit.dbus; with Cockpit's administrative
// access on, through the privileged bridge ("superuser: try"), else as the logged-in user.

export const BUS_NAME = "org.berth.Berth1";
export const MANAGER_PATH = "/org/berth/Berth1";
export const MANAGER = "org.berth.Berth1.Manager";
export const TRANSACTION = "org.berth.Berth1.Transaction";

/// a{sv} values arrive as { t, v } variants.
function unwrap(dict) {
    const out = {};
    for (const [k, variant] of Object.entries(dict || {})) out[k] = variant && variant.v;
    return out;
}

/// Options for a call: booleans and strings as variants.
export function options(values) {
    const out = {};
    for (const [k, v] of Object.entries(values || {})) {
        out[k] = { t: typeof v === "boolean" ? "b" : "s", v };
    }
    return out;
}

/// The deployments in GetStatus's JSON (org.containers.bootc/v1 BootcHost with Berth's list).
function deploymentsOf(json) {
    const host = JSON.parse(json);
    const list = (((host || {}).status || {}).berth || {}).deployments || [];
    return list.map(d => ({
        index: d.index,
        image: ((d.image || {}).image || {}).image || "",
        version: (d.image || {}).version || "",
        digest: (d.image || {}).imageDigest || "",
        timestamp: (d.image || {}).timestamp || "",
        osName: d.osName || "",
        booted: d.booted === true,
        staged: d.staged === true,
        // What starts next: a staged deployment, or a default that is not running (after a
        // rollback or a factory reset).
        nextStart: d.staged === true || (d.default === true && d.booted !== true),
        rollback: d.rollback === true,
        pinned: d.pinned === true,
    }));
}

/// Follows berthd; calls `onChange(state)` whenever anything it shows changed.
export class Berth {
    constructor(onChange) {
        this.onChange = onChange;
        this.state = {
            reachable: null, // null: not known yet
            manager: null,
            deployments: [],
            transaction: null, // { path, kind, initiator, phase, fraction, done, total, message }
            finished: null, // the last transaction's outcome: { path, kind, success, errorName, errorMessage }
            followed: [], // every transaction followed, in order (the page shows it as data-followed)
        };
        this.statusRequests = 0;
        this.open();
    }

    /// A bus channel of our own. Cockpit closes it for good when the bridge loses it; then a
    /// new one is opened the next time berthd is looked for.
    open() {
        this.closed = false;
        this.forget();
        this.client = cockpit.dbus(BUS_NAME, { bus: "system", superuser: "try" });
        this.manager = this.client.proxy(MANAGER, MANAGER_PATH);
        this.manager.addEventListener("changed", () => this.managerChanged());
        this.client.addEventListener("owner", (_ev, owner) => {
            // A new berthd numbers its transactions from 1 again.
            this.forget();
            if (owner === null) this.lost();
            else if (owner) this.connect();
        });
        this.client.addEventListener("close", (_ev, options) => {
            console.warn("berth: bus channel closed", options && options.problem);
            this.closed = true;
            this.lost();
        });
        this.client.subscribe({ interface: TRANSACTION, path_namespace: MANAGER_PATH },
                              (path, _iface, signal, args) => this.transactionSignal(path, signal, args));
        // The scheduler's events: the newest is shown until the next.
        this.client.subscribe({ interface: MANAGER, path: MANAGER_PATH, member: "AutomaticUpdate" },
                              (_path, _iface, _signal, [event, details]) =>
                                  this.emit({ automaticEvent: { event, details: unwrap(details) } }));
        this.connect();
    }

    /// What is known of one berthd's transactions.
    forget() {
        this.ended = new Set(); // sent Finished: their late signals must not bring them back
        this.kinds = new Map(); // path -> kind, for the outcome of one that ended
        this.signalled = new Set(); // paths whose signals are newer than any GetAll reply
        this.seen = new Set(); // paths already counted in `followed`
    }

    emit(changes) {
        this.state = { ...this.state, ...changes };
        this.onChange(this.state);
    }

    connect() {
        this.manager.wait()
                .then(() => {
                    if (!this.manager.valid) throw new Error("berthd is not on the bus");
                    clearInterval(this.retry);
                    this.retry = null;
                    this.managerChanged();
                    // berthd stays up while a client is registered; it forgets the bridge's
                    // connection when that leaves the bus (the session ends).
                    this.client.call(MANAGER_PATH, MANAGER, "RegisterClient", [{}], { type: "a{sv}" })
                            .catch(ex => console.warn("berth: RegisterClient:", ex.name, ex.message));
                })
                .catch(ex => {
                    console.warn("berth: cannot reach berthd:", ex.message);
                    this.lost();
                });
    }

    /// berthd went away: say so, and knock every 3 s (a call starts it when it is
    /// bus-activatable); its return on the bus reconnects the page.
    lost() {
        this.emit({ reachable: false, transaction: null });
        if (this.retry) return;
        this.retry = setInterval(() => {
            if (this.closed) {
                clearInterval(this.retry);
                this.retry = null;
                this.open();
                return;
            }
            this.client.call(MANAGER_PATH, MANAGER, "GetStatus", [])
                    .then(() => this.connect())
                    .catch(() => {});
        }, 3000);
    }

    managerChanged() {
        const m = this.manager;
        if (!m.valid) return;
        const manager = {
            state: m.State,
            errorName: m.ErrorName,
            errorMessage: m.ErrorMessage,
            booted: unwrap(m.Booted),
            staged: unwrap(m.Staged),
            rollback: unwrap(m.RollbackDeployment),
            cachedUpdate: unwrap(m.CachedUpdate),
            lastCheck: Number(m.LastCheck || 0),
            automaticUpdates: m.AutomaticUpdates,
            automatic: unwrap(m.AutomaticStatus),
            blocked: m.Blocked || "",
            activeTransaction: m.ActiveTransaction,
            emulated: m.Emulated,
        };
        this.emit({ reachable: true, manager });
        this.followActive(manager.activeTransaction);
        this.refreshDeployments();
    }

    refreshDeployments() {
        // Replies may come back out of order: only the newest request's counts.
        const request = ++this.statusRequests;
        this.client.call(MANAGER_PATH, MANAGER, "GetStatus", [])
                .then(([json]) => {
                    if (request === this.statusRequests) this.emit({ deployments: deploymentsOf(json) });
                })
                .catch(ex => console.warn("berth: GetStatus:", ex.message));
    }

    /// Picks up a transaction the moment berthd announces it, whoever started it.
    followActive(path) {
        const current = this.state.transaction;
        if (!path || path === "/" || this.ended.has(path)) {
            if (current) this.emit({ transaction: null });
            return;
        }
        if (current && current.path === path) return;
        // The property and the signals can each announce it first: counted once.
        const followed = this.seen.has(path) ? this.state.followed : [...this.state.followed, path];
        this.seen.add(path);
        this.emit({
            followed,
            transaction: { path, kind: "", initiator: "", phase: "queued", fraction: 0, done: 0, total: 0, message: "" },
        });
        this.client.call(path, "org.freedesktop.DBus.Properties", "GetAll", [TRANSACTION])
                .then(([props]) => {
                    const p = unwrap(props);
                    this.kinds.set(path, p.Kind);
                    const t = this.state.transaction;
                    if (!t || t.path !== path) return;
                    const progress = this.signalled.has(path)
                        ? {}
                        : {
                            phase: p.Phase,
                            fraction: p.Fraction,
                            done: Number(p.BytesDone),
                            total: Number(p.BytesTotal),
                            message: p.Message,
                        };
                    this.emit({ transaction: { ...t, kind: p.Kind, initiator: p.Initiator, ...progress } });
                })
                .catch(ex => console.warn("berth: transaction", path, ex.message));
    }

    transactionSignal(path, signal, args) {
        if (this.ended.has(path)) return;
        if (signal === "Progress") {
            const [phase, fraction, done, total, message] = args;
            this.signalled.add(path);
            if (!this.state.transaction || this.state.transaction.path !== path) this.followActive(path);
            const now = this.state.transaction;
            if (!now || now.path !== path) return;
            this.emit({
                transaction: { ...now, phase, fraction, done: Number(done), total: Number(total), message },
            });
        } else if (signal === "Finished") {
            const [success, errorName, errorMessage] = args;
            const t = this.state.transaction;
            const current = t && t.path === path;
            this.ended.add(path);
            this.emit({
                finished: { path, kind: this.kinds.get(path) || "", success, errorName, errorMessage },
                ...(current ? { transaction: null } : {}),
            });
        }
    }

    /// A Manager method; resolves to its reply's first value.
    call(method, args, signature) {
        return this.client.call(MANAGER_PATH, MANAGER, method, args, { type: signature })
                .then(reply => reply[0]);
    }

    check() { return this.call("Check", [{}], "a{sv}") }
    updateSystem(values) { return this.call("Update", [options(values)], "a{sv}") }
    switchTo(image) { return this.call("Switch", [image, {}], "sa{sv}") }
    rollback() { return this.call("Rollback", [{}], "a{sv}") }
    factoryReset() { return this.call("FactoryReset", [{}], "a{sv}") }
    cleanup() { return this.call("Cleanup", [{}], "a{sv}") }
    reboot() { return this.call("Reboot", [{}], "a{sv}") }
    pin(index, on) { return this.call(on ? "Pin" : "Unpin", [index], "u") }
    configure(policy) { return this.call("Configure", [options({ "automatic-updates": policy })], "a{sv}") }

    cancel() {
        const t = this.state.transaction;
        if (!t) return Promise.resolve();
        return this.client.call(t.path, TRANSACTION, "Cancel", []);
    }
}
