# Berth's user-facing strings: the desktop app, the CLI's human output, and the error
# explanations every client shares. Arguments in { } are filled in by the program.

## Shared: sizes, phases, errors

size-bytes = { $size } bytes
size-kb = { $size } kB
size-mb = { $size } MB
size-gb = { $size } GB
unknown = Unknown
progress-bytes = { $done } of { $total }

phase-queued = Waiting to start
phase-checking = Looking for updates
phase-downloading = Downloading
phase-importing = Unpacking
phase-staging = Preparing the next start
phase-cleanup = Cleaning up
phase-verifying = Comparing with the image
phase-done = Finishing
phase-working = Working

error-network = Cannot reach the update server
error-network-advice = Check the network connection, then try again. Nothing on this system was changed.
error-unauthorized = The update server refused the credentials
error-unauthorized-advice = The login for the image's registry is missing or wrong. An administrator can fix it in the registry credentials.
error-forbidden = The update server denied access
error-forbidden-advice = This system is not allowed to download the image. Ask the image's publisher or an administrator.
error-image-not-found = The system image was not found
error-image-not-found-advice = The registry has no image by this name or tag. It may have moved; ask the image's publisher.
error-invalid-reference = Not a valid image name
error-invalid-reference-advice = Image names look like registry.example.com/os/image:tag. Check the name and try again.
error-invalid-configuration = Berth's settings are not valid
error-invalid-configuration-advice = An administrator needs to correct /etc/berth/berth.toml.
error-bad-image = The downloaded image is damaged
error-bad-image-advice = It was rejected and nothing was installed. Try again later; if it happens again, tell the image's publisher.
error-hostile-image = The image contains unsafe files
error-hostile-image-advice = It was rejected and nothing was installed. Tell the image's publisher.
error-not-bootable = The image cannot start this computer
error-not-bootable-advice = It has no kernel, or no usable system. Nothing was installed; tell the image's publisher.
error-not-trusted = The update is not trusted
error-not-trusted-advice = The image is not signed by a key this system trusts (or its files could be changed by anyone). The system's signature policy decides which images it accepts; ask an administrator.
error-downgrade = This would go back to an older version
error-downgrade-advice = Going back needs an administrator. To return to the previous version, use Roll Back.
error-no-space = Not enough disk space
error-no-space-advice = Free some space (remove old versions with Clean Up), then try again.
error-no-space-advice-amounts = The update needs { $needed } but only { $available } is free. Free at least { $missing } (remove old versions with Clean Up), then try again.
error-cancelled = Cancelled
error-cancelled-advice = The operation was stopped; nothing was changed.
error-wrong-state = Not possible right now
error-wrong-state-advice = The system is not in a state that allows this. Look at the current state and try again.
error-busy = Another operation is running
error-busy-advice = Wait for it to finish, then try again.
error-interrupted = The operation was interrupted
error-interrupted-advice = The update service stopped before it finished. The running system and the installed versions are unchanged; try again.
error-update-rolled-back = The update was rolled back
error-update-rolled-back-advice = The new version failed its checks, did not finish starting, or was marked bad, so the system went back to the previous version by itself. Nothing was lost. The same image will not be installed again; a newer one will be.
error-update-rolled-back-version = The update to { $version } was rolled back
error-health-check-failed = A health check failed
error-health-check-failed-advice = The system did not pass a check it runs after an update. If this start is a trial of an update, the system restarts and tries again or goes back to the previous version.
error-reboot-blocked = The restart is blocked
error-reboot-blocked-advice = Another user is logged in or an application is preventing a restart. Close it or ask the other users to log out, then restart.
error-not-authorized = You are not allowed to do this
error-not-authorized-advice = An administrator has to approve it. Ask one, or sign in as an administrator when asked for a password.
error-unreachable = Cannot reach the update service
error-unreachable-advice = The update service (berthd) is not running or does not answer.
error-failed = The operation failed
error-failed-advice = Nothing was changed. Try again; if it fails again, the system log has the details.

## The desktop app

app-name = System Updates
check-for-updates = Check for updates
main-menu = Main menu
menu-cleanup = Clean Up Old Versions
menu-factory-reset = Factory Reset…
menu-about = About System Updates
about-developer = The Berth developers
about-comments = Updates for this image-based system: download, install and restart, roll back, or reset to factory state.
progress-name = Progress

hero-connecting = Connecting to the update service…
hero-unreachable = Cannot reach the update service
hero-retrying = Trying again…
hero-checking = Checking for updates…
hero-downloading = Downloading update
hero-installing = Installing update
hero-rolling-back = Rolling back
hero-resetting = Preparing the factory reset
hero-cleaning-up = Removing old versions
hero-working = Working…
hero-restarting = Restarting…
hero-restart-update = Restart to finish updating
hero-restart-update-description = Version { $version } is installed and starts after the restart.
hero-restart = Restart to finish
hero-restart-description = The chosen version starts after the restart.
hero-update-available = Update available
hero-update-available-description = Version { $version } · { $size } to download
hero-update-downloaded = Update downloaded
hero-update-downloaded-description = Version { $version } is ready to install.
hero-up-to-date = Up to date
hero-last-checked = Last checked { $time }
hero-not-checked = Not checked yet

button-update-and-restart = _Update and Restart
button-download = _Download
button-restart = _Restart
button-cancel = _Cancel
button-try-again = _Try Again

group-system = This system
row-system = Operating system
row-version = Version
row-image = Image
row-digest = Digest
row-signature = Signature
signature-signed = Signed by { $keys }
signature-unverified = Not verified
row-modifications = Local changes
modifications-unlocked = { $kind ->
    [hotfix] Unlocked until the next update (hotfix)
   *[other] Unlocked until the next restart
 }
modifications-clean = Matches the image
modifications-drifted = Differs from the image: { $paths ->
    [one] 1 file
   *[other] { $paths } files
 }{ $corrupt ->
    [0] {""}
   *[other] , { $corrupt } damaged
 }
row-built = Built

group-automatic = Automatic updates
row-automatic-updates = Automatic updates
policy-off = Off
policy-check = Check only
policy-download = Download automatically
policy-apply = Install automatically
policy-off-description = Updates are only looked for when you ask.
policy-check-description = Updates are looked for regularly; you decide when to download them.
policy-download-description = Updates are downloaded in the background; you decide when to install them.
policy-apply-description = Updates are installed in the background; the system restarts into them by itself when nobody is using it.
automatic-next-check = Next step { $time }
automatic-held-back = Held back
blocked-metered = The network connection is metered.
blocked-on-battery = The computer runs on battery.
blocked-battery-low = The battery is too low.
blocked-low-space = There is not enough free disk space.
blocked-rollout = The update reaches computers gradually; this one's turn has not come yet.
blocked-outside-window = Restarts are allowed only at set hours.
blocked-inhibited = An application is preventing a restart.
blocked-sessions = Someone is logged in.
blocked-reboot-slots = Other computers of the fleet restart first.
blocked-coordination = The fleet's restart coordination cannot be reached.
automatic-event-found = Version { $version } is available
automatic-event-downloaded = Version { $version } was downloaded
automatic-event-staged = Version { $version } is installed and starts at the next restart
automatic-event-rebooting = Restarting into version { $version }
automatic-event-blocked = Automatic update held back: { $reason }
automatic-event-failed = Automatic update failed: { $message }

group-versions = Versions on this system
group-versions-description = Pinned versions are kept when old versions are cleaned up.
rollback-button = _Roll Back…
version-title = Version { $version }
role-booted = Running
role-staged = Next start
role-rollback = Previous
pin-version = Pin version { $version }
unpin-version = Unpin version { $version }

dialog-cancel = _Cancel
rollback-heading = Roll back to version { $version }?
rollback-body = Version { $version } of { $image } starts at the next restart, with its system settings as they were when it last ran: changes made in /etc since then stay with version { $current }, which remains installed. Your files and data in /var and your home folder are kept.
rollback-confirm = _Roll Back
reset-heading = Erase all settings and data?
reset-body = After the next restart, this computer runs { $image } version { $version } exactly as it was built. Discarded: every change to the system settings in /etc and all data in /var, including home folders, installed applications' data, logs and saved passwords. Kept: the installed system versions, until they are cleaned up. This cannot be undone.
reset-confirm = _Erase and Reset

toast-cancelled = Cancelled
toast-cleaned-up = Old versions removed
toast-policy = Automatic updates: { $policy }

notify-restart-title = Restart to finish updating
notify-restart-body = Version { $version } is installed and starts after a restart.

## The berth command line tool

cli-berthd-stopped = berthd stopped while running { $path }
cli-cancelling = cancelling { $path }...
cli-leaving-running = leaving { $path } running (another user started it)
cli-stopped-watching = stopped watching
cli-lost-track = lost track of { $path } before it finished
cli-rolled-back = The previous deployment is the default now; reboot to use it.
cli-reset-prepared = Factory reset prepared (stateroot { $stateroot }); reboot to use it.
cli-nothing-running = nothing is running
cli-cancelled = Cancelled { $path }.
cli-finished-first = { $path } finished before it could be cancelled.
cli-automatic-updates = automatic-updates: { $policy }
cli-automatic-last = Last check: { $when } ({ $outcome })
cli-automatic-next = Next step: { $when }
cli-automatic-blocked = Held back: { $reason }
cli-automatic-failures = Failures in a row: { $failures }
cli-config-error = The configuration on disk is not used: { $error }
cli-up-to-date = Already up to date.
cli-boot-on-trial = This boot is a trial of the update: { $tries } more { $tries ->
    [one] try
   *[other] tries
 } if it does not pass its health checks.
cli-boot-fell-back = The bootloader fell back to the previous deployment; it becomes the default.
cli-known-bad = Not installing { $version }: it failed on this machine before ({ $message }). A newer image will be tried.
cli-marked-good = This boot is marked good.
cli-marked-bad = This boot is marked bad: the next boot goes back to the previous deployment.
cli-last-failure = { $reason ->
    [health-check-failed] Update to { $version } failed its health checks and was rolled back
    [boot-incomplete] Update to { $version } did not finish booting and was rolled back
   *[other] Update to { $version } was marked bad and rolled back
 }: { $detail }
cli-downloaded = Downloaded version { $version }; `berth update --from-downloaded` stages it.
cli-staged = Version { $version } is staged; it boots at the next restart.
cli-role-staged = staged
cli-role-booted = booted
cli-role-rollback = rollback
cli-no-image = (no image)
cli-pinned = pinned
cli-status-deployment = { $image } version { $version }
cli-status-details = digest { $digest }  ostree { $commit }  stateroot { $stateroot }
cli-status-signed = signed by { $keys } ({ $requirements }, scope { $scope })
cli-status-unverified = not verified: the signature policy let it in without a signature ({ $requirements }, scope { $scope })
cli-status-unlocked = { $kind ->
    [hotfix] unlocked (hotfix): local changes to /usr stay until the next update or rollback
   *[other] unlocked (transient): local changes to /usr are gone at the next boot
 }
cli-status-drift-clean = /usr matches the image (checked { $when })
cli-status-drifted = /usr differs from the image: { $summary } (checked { $when }; `berth verify` lists it)
cli-verify-clean = { $root } matches its image: { $entries } entries compared, the repository's objects are intact.
cli-verify-drifted = { $root } differs from its image ({ $entries } entries compared):
cli-verify-changed = changed  { $path } ({ $what })
cli-verify-added = added    { $path }
cli-verify-removed = removed  { $path }
cli-verify-corrupt = corrupt object { $object }: { $detail }
cli-unlocked = { $kind ->
    [hotfix] /usr is writable until the next update or rollback (hotfix). A rollback boots the image as built.
   *[other] /usr is writable until the next boot (transient).
 }
cli-state = state: { $state }
cli-last-error = last error: { $message }
cli-cached-update = update: { $image } version { $version } ({ $digest })
cli-running = running: { $path }
cli-update-available = Update available: { $image } version { $version } ({ $digest }), { $size } to download.
cli-no-update = No update: { $image } is current.
cli-monitor-finished = { $path }: finished
cli-monitor-failed = { $path }: failed: { $message }

## The Cockpit page (cockpit-plugin/)

cockpit-menu-label = Image updates
cockpit-started-by = Started by { $who }
cockpit-install = Install update
cockpit-last-checked = Last checked
cockpit-pinned = Pinned
cockpit-pin = Pin
cockpit-unpin = Unpin
cockpit-cleanup = Clean up old versions
cockpit-switch-title = Switch to another image
cockpit-switch-label = Image
cockpit-switch-help = The system follows this image from now on. Its newest version is downloaded and starts at the next restart.
cockpit-switch-button = Switch
cockpit-reset-title = Factory reset
cockpit-reset-description = Return this system to the image as it was built: every change in /etc and all data in /var are discarded at the next restart.
cockpit-limited-title = Changes need administrative access
cockpit-limited-body = You can see the state of updates. To check, install, roll back or change settings, turn on administrative access with the button at the top of the page.
cockpit-retrying = The page reconnects as soon as it is back.
