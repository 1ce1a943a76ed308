/* global cockpit */
// The "Image updates" page: one status card with the state and its actions, then the
// versions on this system, switching images, the automatic update policy and factory reset.
import React, { useEffect, useState } from "react";
import {
    ActionGroup, Alert, AlertActionCloseButton, AlertGroup, Button, Card, CardBody, CardHeader, CardTitle,
    Content, DataList, DataListAction, DataListCell, DataListItem, DataListItemCells,
    DataListItemRow, DescriptionList, DescriptionListDescription, DescriptionListGroup,
    DescriptionListTerm, EmptyState, EmptyStateBody, Flex, Form, FormGroup, FormHelperText,
    FormSelect, FormSelectOption, HelperText, HelperTextItem, Label, LabelGroup, Modal,
    ModalBody, ModalFooter, ModalHeader, Page, PageSection, Progress, Spinner, Stack, StackItem,
    TextInput, Title,
} from "@patternfly/react-core";
import { Berth } from "./berth.js";
import { _ } from "./l10n.js";
import { callError, explain } from "./explain.js";
import * as fmt from "./format.js";

/// Whether Cockpit's administrative access is on (null while unknown).
function useAdmin() {
    const [allowed, setAllowed] = useState(null);
    useEffect(() => {
        const permission = cockpit.permission({ admin: true });
        const changed = () => setAllowed(permission.allowed);
        permission.addEventListener("changed", changed);
        changed();
        return () => permission.removeEventListener("changed", changed);
    }, []);
    return allowed;
}

/// A refused call, explained; berthd's own words as the details.
function ErrorAlert({ error, onClose, id }) {
    const { title, advice } = explain(error.name, error.message);
    return (
        <Alert variant="danger" isInline title={title} id={id} data-error={error.name}
               actionClose={onClose && <AlertActionCloseButton onClose={onClose} />}>
            <p>{advice}</p>
            {error.message && <p className="berth-details">{error.message}</p>}
        </Alert>
    );
}

/// berthd's busy states while the page has not caught the transaction's details yet.
const BUSY_STATES = { checking: "check", downloading: "update", importing: "update", staging: "update", "cleaning-up": "cleanup" };

function StatusCard({ snap, admin, act, pending }) {
    const m = snap.manager;
    const t = snap.transaction;
    const booted = m.booted;
    let title, description, buttons = [], progress = null;
    const button = (id, label, onClick, variant = "secondary") =>
        <Button key={id} id={id} variant={variant} onClick={onClick} isDisabled={pending}>{label}</Button>;
    const check = button("check", _("check-for-updates"), () => act(b => b.check()));
    const restart = button("restart", _("button-restart"), () => act(b => b.reboot()), "primary");
    const staged = m.staged.version || m.staged.digest;
    if (t) {
        title = fmt.runningTitle(t.kind, t.phase);
        if (t.initiator) description = _("cockpit-started-by", { who: t.initiator });
        const bytes = t.total > 0 ? _("progress-bytes", { done: fmt.size(t.done), total: fmt.size(t.total) }) : "";
        progress = (
            <Progress id="progress" value={Math.round((t.fraction || 0) * 100)}
                      title={fmt.phase(t.phase)} label={bytes || undefined}
                      aria-label={_("progress-name")} data-phase={t.phase} />
        );
        buttons = [button("cancel", _("button-cancel"), () => act(b => b.cancel()))];
    } else if (Object.hasOwn(BUSY_STATES, m.state)) {
        title = fmt.runningTitle(BUSY_STATES[m.state], m.state);
    } else if (m.state === "needs-reboot") {
        title = staged ? _("hero-restart-update") : _("hero-restart");
        description = staged
            ? _("hero-restart-update-description", { version: fmt.version(m.staged.version, m.staged.digest) })
            : _("hero-restart-description");
        buttons = [restart];
    } else if (m.state === "update-available" || m.state === "update-ready") {
        const u = m.cachedUpdate;
        const v = fmt.version(u.version, u.digest);
        if (u.downloaded) {
            title = _("hero-update-downloaded");
            description = _("hero-update-downloaded-description", { version: v });
        } else {
            title = _("hero-update-available");
            description = _("hero-update-available-description", { version: v, size: fmt.size(Number(u["download-size"] || 0)) });
        }
        buttons = [
            button("update-restart", _("button-update-and-restart"),
                   () => act(b => b.updateSystem({ "from-downloaded": !!u.downloaded, reboot: true })), "primary"),
            button("update", _("cockpit-install"), () => act(b => b.updateSystem({ "from-downloaded": !!u.downloaded }))),
            ...(u.downloaded ? [] : [button("download", _("button-download"), () => act(b => b.updateSystem({ "download-only": true })))]),
            check,
        ];
    } else if (m.state === "error") {
        const e = explain(m.errorName, m.errorMessage);
        title = e.title;
        description = e.advice;
        buttons = [button("try-again", _("button-try-again"), () => act(b => b.check()), "primary")];
        // A later failure (a timer's check, say) does not undo what waits for the restart.
        if (staged) buttons.push(restart);
    } else {
        title = _("hero-up-to-date");
        description = m.lastCheck ? _("hero-last-checked", { time: fmt.dateTime(m.lastCheck) }) : _("hero-not-checked");
        buttons = [check];
    }
    return (
        <Card id="status" data-followed={snap.followed.join(" ")}>
            <CardHeader>
                <Title headingLevel="h2" size="xl" id="status-title" data-state={t ? "running" : m.state}>{title}</Title>
            </CardHeader>
            <CardBody>
                <Stack hasGutter>
                    {description && <StackItem><Content component="p" id="status-description">{description}</Content></StackItem>}
                    {progress && <StackItem>{progress}</StackItem>}
                    {admin && <StackItem><ActionGroup className="berth-actions">{buttons}</ActionGroup></StackItem>}
                    <StackItem>
                        <DescriptionList isHorizontal isCompact id="system">
                            {[
                                ["row-system", booted["os-name"]],
                                ["row-version", fmt.version(booted.version, booted.digest)],
                                ["row-image", booted.image],
                                ["row-digest", fmt.shortDigest(booted.digest)],
                                ["row-signature", fmt.signature(booted)],
                                ["row-modifications", fmt.modifications(booted)],
                                ["row-built", fmt.date(booted.timestamp)],
                                ["cockpit-last-checked", m.lastCheck ? fmt.dateTime(m.lastCheck) : _("hero-not-checked")],
                            ].filter(([, v]) => v).map(([key, value]) => (
                                <DescriptionListGroup key={key}>
                                    <DescriptionListTerm>{_(key)}</DescriptionListTerm>
                                    <DescriptionListDescription data-row={key}>{value}</DescriptionListDescription>
                                </DescriptionListGroup>
                            ))}
                        </DescriptionList>
                    </StackItem>
                </Stack>
            </CardBody>
        </Card>
    );
}

function roles(d) {
    return [
        d.booted && ["role-booted", "green"],
        d.nextStart && ["role-staged", "blue"],
        d.rollback && ["role-rollback", "grey"],
        d.pinned && ["cockpit-pinned", "purple"],
    ].filter(Boolean);
}

function VersionsCard({ snap, admin, act, confirm, busy }) {
    const rollbackTo = snap.deployments.find(d => d.rollback);
    return (
        <Card id="versions">
            <CardHeader actions={admin && {
                actions: [
                    <Button key="rollback" id="rollback" variant="secondary" isDisabled={!rollbackTo || busy}
                            onClick={() => confirm("rollback")}>{_("rollback-button")}</Button>,
                    <Button key="cleanup" id="cleanup" variant="secondary" isDisabled={busy}
                            onClick={() => act(b => b.cleanup())}>{_("cockpit-cleanup")}</Button>,
                ],
                hasNoOffset: true,
            }}>
                <CardTitle component="h2">{_("group-versions")}</CardTitle>
            </CardHeader>
            <CardBody>
                <Content component="p">{_("group-versions-description")}</Content>
                <DataList aria-label={_("group-versions")} isCompact id="deployments">
                    {snap.deployments.map(d => {
                        const v = fmt.version(d.version, d.digest);
                        return (
                            <DataListItem key={d.index} data-index={d.index} data-version={d.version}>
                                <DataListItemRow>
                                    <DataListItemCells dataListCells={[
                                        <DataListCell key="title" width={2}>
                                            <strong id={`version-${d.index}`}>{_("version-title", { version: v })}</strong>
                                            {" "}
                                            <LabelGroup>
                                                {roles(d).map(([key, color]) => <Label key={key} color={color} isCompact data-role={key}>{_(key)}</Label>)}
                                            </LabelGroup>
                                        </DataListCell>,
                                        <DataListCell key="image" width={3}>{d.image}</DataListCell>,
                                        <DataListCell key="digest" width={1}><code>{fmt.shortDigest(d.digest)}</code></DataListCell>,
                                        <DataListCell key="built" width={1}>{fmt.date(d.timestamp)}</DataListCell>,
                                    ]} />
                                    {admin && (
                                        <DataListAction aria-labelledby={`version-${d.index}`} id={`pin-action-${d.index}`}>
                                            <Button variant="secondary" size="sm" className="berth-pin" isDisabled={busy}
                                                    aria-label={_(d.pinned ? "unpin-version" : "pin-version", { version: v })}
                                                    onClick={() => act(b => b.pin(d.index, !d.pinned))}>
                                                {_(d.pinned ? "cockpit-unpin" : "cockpit-pin")}
                                            </Button>
                                        </DataListAction>
                                    )}
                                </DataListItemRow>
                            </DataListItem>
                        );
                    })}
                </DataList>
            </CardBody>
        </Card>
    );
}

function SwitchCard({ act, busy }) {
    const [image, setImage] = useState("");
    const [error, setError] = useState(null);
    const submit = ev => {
        ev.preventDefault();
        setError(null);
        act(b => b.switchTo(image.trim()), setError);
    };
    return (
        <Card id="switch">
            <CardHeader><CardTitle component="h2">{_("cockpit-switch-title")}</CardTitle></CardHeader>
            <CardBody>
                <Form onSubmit={submit}>
                    <FormGroup label={_("cockpit-switch-label")} fieldId="switch-image">
                        <TextInput id="switch-image" value={image} onChange={(_ev, v) => setImage(v)}
                                   placeholder="registry.example.com/os/image:tag"
                                   validated={error ? "error" : "default"} />
                        <FormHelperText>
                            <HelperText>
                                {error
                                    ? <HelperTextItem variant="error" id="switch-error" data-error={error.name}>
                                        {explain(error.name, error.message).title}: {error.message}
                                    </HelperTextItem>
                                    : <HelperTextItem>{_("cockpit-switch-help")}</HelperTextItem>}
                            </HelperText>
                        </FormHelperText>
                    </FormGroup>
                    <ActionGroup>
                        <Button type="submit" id="switch-button" variant="secondary" isDisabled={busy || !image.trim()}>
                            {_("cockpit-switch-button")}
                        </Button>
                    </ActionGroup>
                </Form>
            </CardBody>
        </Card>
    );
}

/// The scheduler's state for an administrator: the last step and berthd's words for its
/// outcome, the next one, what holds it back, and its newest event.
function Schedule({ snap }) {
    const m = snap.manager;
    const a = m.automatic || {};
    const on = m.automaticUpdates && m.automaticUpdates !== "off";
    const last = Math.max(Number(a["last-check"] || 0), m.lastCheck || 0);
    const next = Number(a["next-run"] || 0);
    const ev = snap.automaticEvent;
    const said = ev ? fmt.automaticEvent(ev.event, ev.details) : null;
    if (!on && !last) return null;
    return (
        <Stack hasGutter id="automatic-schedule">
            <Content component="p" id="automatic-last">
                {last ? _("hero-last-checked", { time: fmt.dateTime(last) }) : _("hero-not-checked")}
                {a["last-outcome"] ? ` (${a["last-outcome"]})` : ""}
            </Content>
            {on && next > 0 &&
                <Content component="p" id="automatic-next">{_("automatic-next-check", { time: fmt.dateTime(next) })}</Content>}
            {on && m.blocked &&
                <Alert isInline variant="warning" id="automatic-held" title={_("automatic-held-back")}>
                    {fmt.blocked(m.blocked, a["blocked-reason"])}
                    {a["blocked-reason"] && fmt.blocked(m.blocked, "") !== a["blocked-reason"]
                        ? <Content component="small" id="automatic-held-detail"> ({a["blocked-reason"]})</Content>
                        : null}
                </Alert>}
            {said &&
                <Alert isInline isPlain variant={ev.event === "failed" ? "danger" : "info"} id="automatic-event" title={said} />}
        </Stack>
    );
}

function PolicyCard({ snap, admin, configure }) {
    const policy = snap.manager.automaticUpdates;
    return (
        <Card id="automatic">
            <CardHeader><CardTitle component="h2">{_("group-automatic")}</CardTitle></CardHeader>
            <CardBody>
                <Form onSubmit={ev => ev.preventDefault()}>
                    <FormGroup label={_("row-automatic-updates")} fieldId="policy">
                        <FormSelect id="policy" value={policy} isDisabled={!admin}
                                    onChange={(_ev, v) => configure(v)}>
                            {fmt.POLICIES.map(p => <FormSelectOption key={p} value={p} label={_(`policy-${p}`)} />)}
                        </FormSelect>
                        <FormHelperText>
                            <HelperText><HelperTextItem id="policy-description">{_(`policy-${policy}-description`)}</HelperTextItem></HelperText>
                        </FormHelperText>
                    </FormGroup>
                </Form>
                <Schedule snap={snap} />
            </CardBody>
        </Card>
    );
}

function ResetCard({ confirm, busy }) {
    return (
        <Card id="factory-reset">
            <CardHeader><CardTitle component="h2">{_("cockpit-reset-title")}</CardTitle></CardHeader>
            <CardBody>
                <Flex justifyContent={{ default: "justifyContentSpaceBetween" }} alignItems={{ default: "alignItemsCenter" }}>
                    <Content component="p">{_("cockpit-reset-description")}</Content>
                    <Button id="reset" variant="danger" isDisabled={busy} onClick={() => confirm("reset")}>
                        {_("menu-factory-reset")}
                    </Button>
                </Flex>
            </CardBody>
        </Card>
    );
}

/// The rollback and factory reset confirmations: they say what comes back and what is lost.
function Confirmation({ what, snap, onCancel, onConfirm }) {
    const booted = snap.manager.booted;
    const current = fmt.version(booted.version, booted.digest);
    let heading, body, label, variant;
    if (what === "rollback") {
        const d = snap.deployments.find(x => x.rollback) || {};
        const v = fmt.version(d.version, d.digest);
        heading = _("rollback-heading", { version: v });
        body = _("rollback-body", { version: v, image: d.image, current });
        label = _("rollback-confirm");
        variant = "primary";
    } else {
        heading = _("reset-heading");
        body = _("reset-body", { image: booted.image, version: current });
        label = _("reset-confirm");
        variant = "danger";
    }
    return (
        <Modal isOpen variant="small" onClose={onCancel} id="confirm-dialog" aria-labelledby="confirm-title">
            <ModalHeader title={heading} labelId="confirm-title" titleIconVariant={what === "reset" ? "warning" : undefined} />
            <ModalBody>{body}</ModalBody>
            <ModalFooter>
                <Button id="confirm" variant={variant} onClick={onConfirm}>{label}</Button>
                <Button id="confirm-cancel" variant="link" onClick={onCancel}>{_("dialog-cancel")}</Button>
            </ModalFooter>
        </Modal>
    );
}

/// Short-lived confirmations in the corner, as Cockpit pages show them.
function Notices({ notices, dismiss }) {
    return (
        <AlertGroup isToast isLiveRegion>
            {notices.map(n => (
                <Alert key={n.key} variant="success" title={n.title} timeout={6000} data-notice={n.id}
                       onTimeout={() => dismiss(n.key)}
                       actionClose={<AlertActionCloseButton onClose={() => dismiss(n.key)} />} />
            ))}
        </AlertGroup>
    );
}

export function App() {
    const [snap, setSnap] = useState(null);
    const [berth, setBerth] = useState(null);
    const [actionError, setActionError] = useState(null);
    const [confirming, setConfirming] = useState(null);
    const [pending, setPending] = useState(false);
    const [notices, setNotices] = useState([]);
    const admin = useAdmin();
    useEffect(() => { setBerth(new Berth(setSnap)) }, []);

    const notify = (id, args) =>
        setNotices(list => [...list, { key: Date.now() + Math.random(), id, title: _(id, args) }]);
    const dismiss = key => setNotices(list => list.filter(n => n.key !== key));
    // What a finished transaction leaves no trace of otherwise.
    const finished = snap && snap.finished;
    useEffect(() => {
        if (!finished) return;
        if (finished.errorName.endsWith(".Cancelled")) notify("toast-cancelled");
        else if (finished.success && finished.kind === "cleanup") notify("toast-cleaned-up");
    }, [finished]);

    /// Runs a call; a refusal goes to `onError`, or to the alert at the top. Buttons wait
    /// while it is on its way. Resolves to whether it was accepted.
    const act = (call, onError) => {
        setActionError(null);
        setPending(true);
        return call(berth)
                .then(() => true, ex => {
                    const error = callError(ex);
                    console.warn("berth: call failed", error.name, error.message);
                    (onError || setActionError)(error);
                    return false;
                })
                .finally(() => setPending(false));
    };
    const configure = policy =>
        act(b => b.configure(policy))
                .then(ok => ok && notify("toast-policy", { policy: _(`policy-${policy}`) }));

    let body;
    if (!snap || snap.reachable === null) {
        body = <EmptyState titleText={_("hero-connecting")} icon={Spinner} headingLevel="h2" id="connecting" />;
    } else if (!snap.reachable || !snap.manager) {
        body = (
            <EmptyState titleText={_("error-unreachable")} headingLevel="h2" status="danger" id="unreachable">
                <EmptyStateBody>{_("error-unreachable-advice")} {_("cockpit-retrying")}</EmptyStateBody>
            </EmptyState>
        );
    } else {
        const busy = !!snap.transaction;
        const showAdmin = admin === true;
        body = (
            <Stack hasGutter>
                {admin === false && (
                    <Alert variant="info" isInline id="limited-access" title={_("cockpit-limited-title")}>
                        {_("cockpit-limited-body")}
                    </Alert>
                )}
                {actionError && <ErrorAlert id="action-error" error={actionError} onClose={() => setActionError(null)} />}
                <StatusCard snap={snap} admin={showAdmin} act={act} pending={pending} />
                <VersionsCard snap={snap} admin={showAdmin} act={act} busy={busy} confirm={setConfirming} />
                {showAdmin && <SwitchCard act={act} busy={busy} />}
                <PolicyCard snap={snap} admin={showAdmin} configure={configure} />
                {showAdmin && <ResetCard confirm={setConfirming} busy={busy} />}
                {confirming && (
                    <Confirmation what={confirming} snap={snap} onCancel={() => setConfirming(null)}
                                  onConfirm={() => {
                                      const what = confirming;
                                      setConfirming(null);
                                      act(b => (what === "rollback" ? b.rollback() : b.factoryReset()));
                                  }} />
                )}
            </Stack>
        );
    }
    return (
        <Page>
            <PageSection>{body}</PageSection>
            <Notices notices={notices} dismiss={dismiss} />
        </Page>
    );
}
