# Berths Texte auf Deutsch: die Desktop-Anwendung, die Ausgaben des Befehls berth und die
# Fehlererklärungen, die alle Clients teilen.

## Gemeinsam: Größen, Phasen, Fehler

size-bytes = { $size } Bytes
size-kb = { $size } kB
size-mb = { $size } MB
size-gb = { $size } GB
unknown = Unbekannt
progress-bytes = { $done } von { $total }

phase-queued = Wartet auf den Start
phase-checking = Suche nach Aktualisierungen
phase-downloading = Wird heruntergeladen
phase-importing = Wird entpackt
phase-staging = Nächster Start wird vorbereitet
phase-cleanup = Wird aufgeräumt
phase-verifying = Wird mit dem Abbild verglichen
phase-done = Wird abgeschlossen
phase-working = In Arbeit

error-network = Der Aktualisierungsserver ist nicht erreichbar
error-network-advice = Prüfen Sie die Netzwerkverbindung und versuchen Sie es erneut. Am System wurde nichts verändert.
error-unauthorized = Der Aktualisierungsserver hat die Zugangsdaten abgelehnt
error-unauthorized-advice = Die Anmeldung für die Registry des Abbilds fehlt oder ist falsch. Eine Administratorin oder ein Administrator kann die Zugangsdaten korrigieren.
error-forbidden = Der Aktualisierungsserver verweigert den Zugriff
error-forbidden-advice = Dieses System darf das Abbild nicht herunterladen. Wenden Sie sich an den Herausgeber des Abbilds oder an die Administration.
error-image-not-found = Das Systemabbild wurde nicht gefunden
error-image-not-found-advice = Die Registry kennt kein Abbild mit diesem Namen oder Tag. Vielleicht ist es umgezogen; fragen Sie den Herausgeber des Abbilds.
error-invalid-reference = Kein gültiger Abbildname
error-invalid-reference-advice = Abbildnamen sehen so aus: registry.example.com/os/abbild:tag. Prüfen Sie den Namen und versuchen Sie es erneut.
error-invalid-configuration = Berths Einstellungen sind ungültig
error-invalid-configuration-advice = Die Administration muss /etc/berth/berth.toml korrigieren.
error-bad-image = Das heruntergeladene Abbild ist beschädigt
error-bad-image-advice = Es wurde abgelehnt und nichts wurde installiert. Versuchen Sie es später erneut; passiert es wieder, informieren Sie den Herausgeber des Abbilds.
error-hostile-image = Das Abbild enthält unsichere Dateien
error-hostile-image-advice = Es wurde abgelehnt und nichts wurde installiert. Informieren Sie den Herausgeber des Abbilds.
error-not-bootable = Mit diesem Abbild kann der Computer nicht starten
error-not-bootable-advice = Es enthält keinen Kernel oder kein brauchbares System. Nichts wurde installiert; informieren Sie den Herausgeber des Abbilds.
error-not-trusted = Der Aktualisierung wird nicht vertraut
error-not-trusted-advice = Das Abbild ist nicht mit einem Schlüssel signiert, dem dieses System vertraut (oder seine Dateien könnten von jedem geändert werden). Die Signaturrichtlinie des Systems legt fest, welche Abbilder es annimmt; wenden Sie sich an die Administration.
error-downgrade = Das wäre eine Rückkehr zu einer älteren Version
error-downgrade-advice = Eine Rückkehr erfordert die Administration. Um zur vorherigen Version zurückzukehren, verwenden Sie „Zurücksetzen“.
error-no-space = Nicht genug Speicherplatz
error-no-space-advice = Geben Sie Speicherplatz frei (entfernen Sie alte Versionen mit „Aufräumen“) und versuchen Sie es erneut.
error-no-space-advice-amounts = Die Aktualisierung braucht { $needed }, frei sind nur { $available }. Geben Sie mindestens { $missing } frei (entfernen Sie alte Versionen mit „Aufräumen“) und versuchen Sie es erneut.
error-cancelled = Abgebrochen
error-cancelled-advice = Der Vorgang wurde gestoppt; nichts wurde verändert.
error-wrong-state = Gerade nicht möglich
error-wrong-state-advice = Der Zustand des Systems erlaubt das nicht. Sehen Sie sich den aktuellen Zustand an und versuchen Sie es erneut.
error-busy = Ein anderer Vorgang läuft
error-busy-advice = Warten Sie, bis er beendet ist, und versuchen Sie es dann erneut.
error-interrupted = Der Vorgang wurde unterbrochen
error-interrupted-advice = Der Aktualisierungsdienst wurde beendet, bevor er fertig war. Das laufende System und die installierten Versionen sind unverändert; versuchen Sie es erneut.
error-update-rolled-back = Die Aktualisierung wurde zurückgenommen
error-update-rolled-back-advice = Die neue Version hat ihre Prüfungen nicht bestanden, ist nicht fertig gestartet oder wurde als schlecht markiert, daher ist das System von selbst zur vorherigen Version zurückgekehrt. Es ging nichts verloren. Dasselbe Abbild wird nicht erneut installiert, ein neueres schon.
error-update-rolled-back-version = Die Aktualisierung auf { $version } wurde zurückgenommen
error-health-check-failed = Eine Systemprüfung ist fehlgeschlagen
error-health-check-failed-advice = Das System hat eine Prüfung nach einer Aktualisierung nicht bestanden. Ist dieser Start eine Erprobung der Aktualisierung, startet das System neu und versucht es erneut oder kehrt zur vorherigen Version zurück.
error-reboot-blocked = Der Neustart wird blockiert
error-reboot-blocked-advice = Jemand anderes ist angemeldet oder eine Anwendung verhindert den Neustart. Schließen Sie sie oder bitten Sie die anderen, sich abzumelden, und starten Sie dann neu.
error-not-authorized = Sie dürfen das nicht tun
error-not-authorized-advice = Die Administration muss zustimmen. Fragen Sie nach, oder melden Sie sich als Administrator an, wenn nach einem Passwort gefragt wird.
error-unreachable = Der Aktualisierungsdienst ist nicht erreichbar
error-unreachable-advice = Der Aktualisierungsdienst (berthd) läuft nicht oder antwortet nicht.
error-failed = Der Vorgang ist fehlgeschlagen
error-failed-advice = Nichts wurde verändert. Versuchen Sie es erneut; scheitert es wieder, steht im Systemprotokoll mehr.

## Die Desktop-Anwendung

app-name = Systemaktualisierungen
check-for-updates = Nach Aktualisierungen suchen
main-menu = Hauptmenü
menu-cleanup = Alte Versionen aufräumen
menu-factory-reset = Auf Werkszustand zurücksetzen …
menu-about = Info zu Systemaktualisierungen
about-developer = Die Berth-Entwickler
about-comments = Aktualisierungen für dieses abbildbasierte System: herunterladen, installieren und neu starten, zurückkehren oder auf den Werkszustand zurücksetzen.
progress-name = Fortschritt

hero-connecting = Verbindung zum Aktualisierungsdienst …
hero-unreachable = Der Aktualisierungsdienst ist nicht erreichbar
hero-retrying = Neuer Versuch …
hero-checking = Suche nach Aktualisierungen …
hero-downloading = Aktualisierung wird heruntergeladen
hero-installing = Aktualisierung wird installiert
hero-rolling-back = Rückkehr zur vorherigen Version
hero-resetting = Zurücksetzen wird vorbereitet
hero-cleaning-up = Alte Versionen werden entfernt
hero-working = In Arbeit …
hero-restarting = Neustart …
hero-restart-update = Neu starten, um die Aktualisierung abzuschließen
hero-restart-update-description = Version { $version } ist installiert und startet nach dem Neustart.
hero-restart = Neu starten zum Abschließen
hero-restart-description = Die gewählte Version startet nach dem Neustart.
hero-update-available = Aktualisierung verfügbar
hero-update-available-description = Version { $version } · { $size } herunterzuladen
hero-update-downloaded = Aktualisierung heruntergeladen
hero-update-downloaded-description = Version { $version } ist bereit zur Installation.
hero-up-to-date = Auf dem neuesten Stand
hero-last-checked = Zuletzt geprüft: { $time }
hero-not-checked = Noch nicht geprüft

button-update-and-restart = _Aktualisieren und neu starten
button-download = _Herunterladen
button-restart = _Neu starten
button-cancel = _Abbrechen
button-try-again = _Erneut versuchen

group-system = Dieses System
row-system = Betriebssystem
row-version = Version
row-image = Abbild
row-digest = Prüfsumme
row-signature = Signatur
signature-signed = Signiert von { $keys }
signature-unverified = Nicht geprüft
row-modifications = Lokale Änderungen
modifications-unlocked = { $kind ->
    [hotfix] Entsperrt bis zur nächsten Aktualisierung (Hotfix)
   *[other] Entsperrt bis zum nächsten Neustart
 }
modifications-clean = Entspricht dem Abbild
modifications-drifted = Weicht vom Abbild ab: { $paths ->
    [one] 1 Datei
   *[other] { $paths } Dateien
 }{ $corrupt ->
    [0] {""}
   *[other] , { $corrupt } beschädigt
 }
row-built = Erstellt

group-automatic = Automatische Aktualisierungen
row-automatic-updates = Automatische Aktualisierungen
policy-off = Aus
policy-check = Nur suchen
policy-download = Automatisch herunterladen
policy-apply = Automatisch installieren
policy-off-description = Nach Aktualisierungen wird nur gesucht, wenn Sie es wünschen.
policy-check-description = Es wird regelmäßig gesucht; Sie entscheiden, wann heruntergeladen wird.
policy-download-description = Aktualisierungen werden im Hintergrund heruntergeladen; Sie entscheiden, wann sie installiert werden.
policy-apply-description = Aktualisierungen werden im Hintergrund installiert; das System startet von selbst neu, wenn niemand es benutzt.
automatic-next-check = Nächster Schritt { $time }
automatic-held-back = Zurückgehalten
blocked-metered = Die Netzwerkverbindung ist getaktet.
blocked-on-battery = Der Computer läuft im Akkubetrieb.
blocked-battery-low = Der Akku ist zu schwach.
blocked-low-space = Es ist nicht genug Speicherplatz frei.
blocked-rollout = Die Aktualisierung erreicht die Computer nach und nach; dieser ist noch nicht an der Reihe.
blocked-outside-window = Neustarts sind nur zu festgelegten Zeiten erlaubt.
blocked-inhibited = Eine Anwendung verhindert einen Neustart.
blocked-sessions = Jemand ist angemeldet.
blocked-reboot-slots = Andere Computer der Flotte starten zuerst neu.
blocked-coordination = Die Neustart-Koordination der Flotte ist nicht erreichbar.
automatic-event-found = Version { $version } ist verfügbar
automatic-event-downloaded = Version { $version } wurde heruntergeladen
automatic-event-staged = Version { $version } ist installiert und startet beim nächsten Neustart
automatic-event-rebooting = Neustart in Version { $version }
automatic-event-blocked = Automatische Aktualisierung zurückgehalten: { $reason }
automatic-event-failed = Automatische Aktualisierung fehlgeschlagen: { $message }

group-versions = Versionen auf diesem System
group-versions-description = Angeheftete Versionen bleiben erhalten, wenn alte Versionen aufgeräumt werden.
rollback-button = _Zurückkehren …
version-title = Version { $version }
role-booted = Läuft
role-staged = Nächster Start
role-rollback = Vorherige
pin-version = Version { $version } anheften
unpin-version = Version { $version } lösen

dialog-cancel = _Abbrechen
rollback-heading = Zu Version { $version } zurückkehren?
rollback-body = Version { $version } von { $image } startet beim nächsten Neustart, mit den Systemeinstellungen, die sie zuletzt hatte: Änderungen in /etc seitdem bleiben bei Version { $current }, die installiert bleibt. Ihre Dateien und Daten in /var und in Ihrem persönlichen Ordner bleiben erhalten.
rollback-confirm = _Zurückkehren
reset-heading = Alle Einstellungen und Daten löschen?
reset-body = Nach dem nächsten Neustart läuft auf diesem Computer { $image } Version { $version } genau so, wie es erstellt wurde. Verworfen werden: jede Änderung der Systemeinstellungen in /etc und alle Daten in /var, auch persönliche Ordner, Daten installierter Anwendungen, Protokolle und gespeicherte Passwörter. Erhalten bleiben: die installierten Systemversionen, bis sie aufgeräumt werden. Das lässt sich nicht rückgängig machen.
reset-confirm = _Löschen und zurücksetzen

toast-cancelled = Abgebrochen
toast-cleaned-up = Alte Versionen entfernt
toast-policy = Automatische Aktualisierungen: { $policy }

notify-restart-title = Neu starten, um die Aktualisierung abzuschließen
notify-restart-body = Version { $version } ist installiert und startet nach einem Neustart.

## Der Befehl berth

cli-berthd-stopped = berthd wurde während { $path } beendet
cli-cancelling = { $path } wird abgebrochen …
cli-leaving-running = { $path } läuft weiter (jemand anderes hat es gestartet)
cli-stopped-watching = Beobachtung beendet
cli-lost-track = { $path } wurde aus den Augen verloren, bevor es fertig war
cli-rolled-back = Die vorherige Installation ist jetzt die Vorgabe; starten Sie neu, um sie zu verwenden.
cli-reset-prepared = Zurücksetzen vorbereitet (Stateroot { $stateroot }); starten Sie neu, um es zu verwenden.
cli-nothing-running = es läuft nichts
cli-cancelled = { $path } abgebrochen.
cli-finished-first = { $path } war fertig, bevor es abgebrochen werden konnte.
cli-automatic-updates = automatische Aktualisierungen: { $policy }
cli-automatic-last = Letzte Prüfung: { $when } ({ $outcome })
cli-automatic-next = Nächster Schritt: { $when }
cli-automatic-blocked = Zurückgehalten: { $reason }
cli-automatic-failures = Fehlschläge in Folge: { $failures }
cli-config-error = Die Konfiguration auf der Platte wird nicht verwendet: { $error }
cli-up-to-date = Bereits auf dem neuesten Stand.
cli-boot-on-trial = Dieser Start erprobt die Aktualisierung: noch { $tries } { $tries ->
    [one] Versuch
   *[other] Versuche
 }, falls die Systemprüfungen fehlschlagen.
cli-boot-fell-back = Der Bootloader ist zur vorherigen Installation zurückgekehrt; sie wird zur Vorgabe.
cli-known-bad = { $version } wird nicht installiert: Es ist auf diesem Rechner bereits gescheitert ({ $message }). Ein neueres Abbild wird versucht.
cli-marked-good = Dieser Start ist als gut markiert.
cli-marked-bad = Dieser Start ist als schlecht markiert: Der nächste Start kehrt zur vorherigen Installation zurück.
cli-last-failure = { $reason ->
    [health-check-failed] Die Aktualisierung auf { $version } hat ihre Systemprüfungen nicht bestanden und wurde zurückgenommen
    [boot-incomplete] Die Aktualisierung auf { $version } hat den Start nicht abgeschlossen und wurde zurückgenommen
   *[other] Die Aktualisierung auf { $version } wurde als schlecht markiert und zurückgenommen
 }: { $detail }
cli-downloaded = Version { $version } heruntergeladen; `berth update --from-downloaded` installiert sie.
cli-staged = Version { $version } ist bereitgestellt; sie startet beim nächsten Neustart.
cli-role-staged = bereit
cli-role-booted = läuft
cli-role-rollback = vorherige
cli-no-image = (kein Abbild)
cli-pinned = angeheftet
cli-status-deployment = { $image } Version { $version }
cli-status-details = Prüfsumme { $digest }  ostree { $commit }  Stateroot { $stateroot }
cli-status-signed = signiert von { $keys } ({ $requirements }, Bereich { $scope })
cli-status-unverified = nicht geprüft: die Signaturrichtlinie ließ es ohne Signatur zu ({ $requirements }, Bereich { $scope })
cli-status-unlocked = { $kind ->
    [hotfix] entsperrt (Hotfix): lokale Änderungen an /usr bleiben bis zur nächsten Aktualisierung oder Rücknahme
   *[other] entsperrt (vorübergehend): lokale Änderungen an /usr sind beim nächsten Start verschwunden
 }
cli-status-drift-clean = /usr entspricht dem Abbild (geprüft { $when })
cli-status-drifted = /usr weicht vom Abbild ab: { $summary } (geprüft { $when }; `berth verify` listet es auf)
cli-verify-clean = { $root } entspricht seinem Abbild: { $entries } Einträge verglichen, die Objekte des Repositorys sind unversehrt.
cli-verify-drifted = { $root } weicht von seinem Abbild ab ({ $entries } Einträge verglichen):
cli-verify-changed = geändert   { $path } ({ $what })
cli-verify-added = hinzugefügt { $path }
cli-verify-removed = entfernt   { $path }
cli-verify-corrupt = beschädigtes Objekt { $object }: { $detail }
cli-unlocked = { $kind ->
    [hotfix] /usr ist bis zur nächsten Aktualisierung oder Rücknahme beschreibbar (Hotfix). Eine Rücknahme startet das Abbild wie erstellt.
   *[other] /usr ist bis zum nächsten Start beschreibbar (vorübergehend).
 }
cli-state = Zustand: { $state }
cli-last-error = letzter Fehler: { $message }
cli-cached-update = Aktualisierung: { $image } Version { $version } ({ $digest })
cli-running = läuft: { $path }
cli-update-available = Aktualisierung verfügbar: { $image } Version { $version } ({ $digest }), { $size } herunterzuladen.
cli-no-update = Keine Aktualisierung: { $image } ist aktuell.
cli-monitor-finished = { $path }: fertig
cli-monitor-failed = { $path }: fehlgeschlagen: { $message }

## Die Cockpit-Seite (cockpit-plugin/)

cockpit-menu-label = Abbild-Aktualisierungen
cockpit-started-by = Gestartet von { $who }
cockpit-install = Aktualisierung installieren
cockpit-last-checked = Zuletzt gesucht
cockpit-pinned = Angeheftet
cockpit-pin = Anheften
cockpit-unpin = Lösen
cockpit-cleanup = Alte Versionen entfernen
cockpit-switch-title = Zu einem anderen Abbild wechseln
cockpit-switch-label = Abbild
cockpit-switch-help = Das System folgt ab jetzt diesem Abbild. Seine neueste Version wird heruntergeladen und startet beim nächsten Neustart.
cockpit-switch-button = Wechseln
cockpit-reset-title = Auf Werkseinstellungen zurücksetzen
cockpit-reset-description = Dieses System kehrt zum Abbild zurück, wie es gebaut wurde: Alle Änderungen in /etc und alle Daten in /var werden beim nächsten Neustart verworfen.
cockpit-limited-title = Änderungen erfordern Administratorrechte
cockpit-limited-body = Sie sehen den Stand der Aktualisierungen. Um zu suchen, zu installieren, zurückzukehren oder Einstellungen zu ändern, schalten Sie oben auf der Seite den administrativen Zugriff ein.
cockpit-retrying = Die Seite verbindet sich wieder, sobald er zurück ist.
