# Les textes de Berth en français : l'application de bureau, les sorties de la commande berth
# et les explications d'erreurs que tous les clients partagent.

## Commun : tailles, phases, erreurs

size-bytes = { $size } octets
size-kb = { $size } ko
size-mb = { $size } Mo
size-gb = { $size } Go
unknown = Inconnu
progress-bytes = { $done } sur { $total }

phase-queued = En attente de démarrage
phase-checking = Recherche de mises à jour
phase-downloading = Téléchargement
phase-importing = Décompression
phase-staging = Préparation du prochain démarrage
phase-cleanup = Nettoyage
phase-verifying = Comparaison avec l'image
phase-done = Finalisation
phase-working = En cours

error-network = Impossible de joindre le serveur de mises à jour
error-network-advice = Vérifiez la connexion réseau, puis réessayez. Rien n'a été modifié sur ce système.
error-unauthorized = Le serveur de mises à jour a refusé les identifiants
error-unauthorized-advice = L'identification pour le registre de l'image est absente ou erronée. Un administrateur peut corriger les identifiants du registre.
error-forbidden = Le serveur de mises à jour refuse l'accès
error-forbidden-advice = Ce système n'a pas le droit de télécharger l'image. Adressez-vous à l'éditeur de l'image ou à un administrateur.
error-image-not-found = L'image système est introuvable
error-image-not-found-advice = Le registre n'a aucune image de ce nom ou de cette étiquette. Elle a peut-être été déplacée ; demandez à l'éditeur de l'image.
error-invalid-reference = Nom d'image non valide
error-invalid-reference-advice = Les noms d'image ressemblent à registry.example.com/os/image:etiquette. Vérifiez le nom et réessayez.
error-invalid-configuration = Les réglages de Berth ne sont pas valides
error-invalid-configuration-advice = Un administrateur doit corriger /etc/berth/berth.toml.
error-bad-image = L'image téléchargée est endommagée
error-bad-image-advice = Elle a été rejetée et rien n'a été installé. Réessayez plus tard ; si cela se reproduit, prévenez l'éditeur de l'image.
error-hostile-image = L'image contient des fichiers dangereux
error-hostile-image-advice = Elle a été rejetée et rien n'a été installé. Prévenez l'éditeur de l'image.
error-not-bootable = Cette image ne peut pas démarrer l'ordinateur
error-not-bootable-advice = Elle n'a pas de noyau ou pas de système utilisable. Rien n'a été installé ; prévenez l'éditeur de l'image.
error-not-trusted = La mise à jour n'est pas de confiance
error-not-trusted-advice = L'image n'est pas signée par une clé à laquelle ce système fait confiance (ou ses fichiers pourraient être modifiés par n'importe qui). La politique de signature du système décide des images qu'il accepte ; demandez à un administrateur.
error-downgrade = Ce serait un retour à une version plus ancienne
error-downgrade-advice = Revenir en arrière demande un administrateur. Pour retrouver la version précédente, utilisez « Revenir en arrière ».
error-no-space = Espace disque insuffisant
error-no-space-advice = Libérez de l'espace (supprimez les anciennes versions avec « Nettoyer »), puis réessayez.
error-no-space-advice-amounts = La mise à jour a besoin de { $needed } mais seulement { $available } sont libres. Libérez au moins { $missing } (supprimez les anciennes versions avec « Nettoyer »), puis réessayez.
error-cancelled = Annulé
error-cancelled-advice = L'opération a été arrêtée ; rien n'a été modifié.
error-wrong-state = Impossible pour le moment
error-wrong-state-advice = L'état du système ne le permet pas. Regardez l'état actuel et réessayez.
error-busy = Une autre opération est en cours
error-busy-advice = Attendez qu'elle se termine, puis réessayez.
error-interrupted = L'opération a été interrompue
error-interrupted-advice = Le service de mises à jour s'est arrêté avant la fin. Le système en cours et les versions installées sont inchangés ; réessayez.
error-update-rolled-back = La mise à jour a été annulée
error-update-rolled-back-advice = La nouvelle version n'a pas passé ses vérifications, n'a pas fini de démarrer ou a été marquée comme mauvaise ; le système est revenu de lui-même à la version précédente. Rien n'a été perdu. La même image ne sera pas réinstallée ; une plus récente le sera.
error-update-rolled-back-version = La mise à jour vers { $version } a été annulée
error-health-check-failed = Une vérification de l'état du système a échoué
error-health-check-failed-advice = Le système n'a pas passé une vérification faite après une mise à jour. Si ce démarrage est un essai de la mise à jour, le système redémarre et réessaie, ou revient à la version précédente.
error-reboot-blocked = Le redémarrage est bloqué
error-reboot-blocked-advice = Un autre utilisateur est connecté ou une application empêche le redémarrage. Fermez-la ou demandez aux autres utilisateurs de se déconnecter, puis redémarrez.
error-not-authorized = Vous n'avez pas le droit de faire cela
error-not-authorized-advice = Un administrateur doit l'approuver. Demandez-le, ou identifiez-vous comme administrateur quand un mot de passe est demandé.
error-unreachable = Impossible de joindre le service de mises à jour
error-unreachable-advice = Le service de mises à jour (berthd) ne fonctionne pas ou ne répond pas.
error-failed = L'opération a échoué
error-failed-advice = Rien n'a été modifié. Réessayez ; en cas de nouvel échec, le journal système donne les détails.

## L'application de bureau

app-name = Mises à jour du système
check-for-updates = Rechercher des mises à jour
main-menu = Menu principal
menu-cleanup = Nettoyer les anciennes versions
menu-factory-reset = Réinitialisation d'usine…
menu-about = À propos de Mises à jour du système
about-developer = Les développeurs de Berth
about-comments = Les mises à jour de ce système à base d'images : télécharger, installer et redémarrer, revenir en arrière ou réinitialiser à l'état d'usine.
progress-name = Progression

hero-connecting = Connexion au service de mises à jour…
hero-unreachable = Impossible de joindre le service de mises à jour
hero-retrying = Nouvelle tentative…
hero-checking = Recherche de mises à jour…
hero-downloading = Téléchargement de la mise à jour
hero-installing = Installation de la mise à jour
hero-rolling-back = Retour en arrière
hero-resetting = Préparation de la réinitialisation
hero-cleaning-up = Suppression des anciennes versions
hero-working = En cours…
hero-restarting = Redémarrage…
hero-restart-update = Redémarrer pour terminer la mise à jour
hero-restart-update-description = La version { $version } est installée et démarre après le redémarrage.
hero-restart = Redémarrer pour terminer
hero-restart-description = La version choisie démarre après le redémarrage.
hero-update-available = Mise à jour disponible
hero-update-available-description = Version { $version } · { $size } à télécharger
hero-update-downloaded = Mise à jour téléchargée
hero-update-downloaded-description = La version { $version } est prête à être installée.
hero-up-to-date = À jour
hero-last-checked = Dernière recherche : { $time }
hero-not-checked = Pas encore recherché

button-update-and-restart = _Mettre à jour et redémarrer
button-download = _Télécharger
button-restart = _Redémarrer
button-cancel = _Annuler
button-try-again = _Réessayer

group-system = Ce système
row-system = Système d'exploitation
row-version = Version
row-image = Image
row-digest = Empreinte
row-signature = Signature
signature-signed = Signée par { $keys }
signature-unverified = Non vérifiée
row-modifications = Modifications locales
modifications-unlocked = { $kind ->
    [hotfix] Déverrouillé jusqu'à la prochaine mise à jour (correctif)
   *[other] Déverrouillé jusqu'au prochain redémarrage
 }
modifications-clean = Conforme à l'image
modifications-drifted = Diffère de l'image : { $paths ->
    [one] 1 fichier
   *[other] { $paths } fichiers
 }{ $corrupt ->
    [0] {""}
   *[other] , { $corrupt } endommagés
 }
row-built = Construite le

group-automatic = Mises à jour automatiques
row-automatic-updates = Mises à jour automatiques
policy-off = Désactivées
policy-check = Rechercher seulement
policy-download = Télécharger automatiquement
policy-apply = Installer automatiquement
policy-off-description = Les mises à jour ne sont recherchées qu'à votre demande.
policy-check-description = Les mises à jour sont recherchées régulièrement ; vous décidez quand les télécharger.
policy-download-description = Les mises à jour sont téléchargées en arrière-plan ; vous décidez quand les installer.
policy-apply-description = Les mises à jour sont installées en arrière-plan ; le système redémarre de lui-même quand personne ne l'utilise.
automatic-next-check = Prochaine étape { $time }
automatic-held-back = Retenue
blocked-metered = La connexion réseau est limitée.
blocked-on-battery = L'ordinateur fonctionne sur batterie.
blocked-battery-low = La batterie est trop faible.
blocked-low-space = Il n'y a pas assez d'espace disque libre.
blocked-rollout = La mise à jour atteint les ordinateurs progressivement ; le tour de celui-ci n'est pas encore venu.
blocked-outside-window = Les redémarrages ne sont permis qu'à certaines heures.
blocked-inhibited = Une application empêche un redémarrage.
blocked-sessions = Quelqu'un est connecté.
blocked-reboot-slots = D'autres ordinateurs de la flotte redémarrent d'abord.
blocked-coordination = La coordination des redémarrages de la flotte est injoignable.
automatic-event-found = La version { $version } est disponible
automatic-event-downloaded = La version { $version } a été téléchargée
automatic-event-staged = La version { $version } est installée et démarre au prochain redémarrage
automatic-event-rebooting = Redémarrage vers la version { $version }
automatic-event-blocked = Mise à jour automatique retenue : { $reason }
automatic-event-failed = Échec de la mise à jour automatique : { $message }

group-versions = Versions sur ce système
group-versions-description = Les versions épinglées sont conservées lors du nettoyage des anciennes versions.
rollback-button = _Revenir en arrière…
version-title = Version { $version }
role-booted = En cours
role-staged = Prochain démarrage
role-rollback = Précédente
pin-version = Épingler la version { $version }
unpin-version = Désépingler la version { $version }

dialog-cancel = _Annuler
rollback-heading = Revenir à la version { $version } ?
rollback-body = La version { $version } de { $image } démarre au prochain redémarrage, avec les réglages système qu'elle avait la dernière fois : les modifications faites dans /etc depuis restent avec la version { $current }, qui reste installée. Vos fichiers et données dans /var et votre dossier personnel sont conservés.
rollback-confirm = _Revenir en arrière
reset-heading = Effacer tous les réglages et toutes les données ?
reset-body = Après le prochain redémarrage, cet ordinateur exécute { $image } version { $version } exactement tel qu'il a été construit. Supprimés : toute modification des réglages système dans /etc et toutes les données dans /var, y compris les dossiers personnels, les données des applications installées, les journaux et les mots de passe enregistrés. Conservées : les versions du système installées, jusqu'à leur nettoyage. Cette action est irréversible.
reset-confirm = _Effacer et réinitialiser

toast-cancelled = Annulé
toast-cleaned-up = Anciennes versions supprimées
toast-policy = Mises à jour automatiques : { $policy }

notify-restart-title = Redémarrer pour terminer la mise à jour
notify-restart-body = La version { $version } est installée et démarre après un redémarrage.

## La commande berth

cli-berthd-stopped = berthd s'est arrêté pendant { $path }
cli-cancelling = annulation de { $path }…
cli-leaving-running = { $path } continue (un autre utilisateur l'a lancé)
cli-stopped-watching = suivi arrêté
cli-lost-track = { $path } a été perdu de vue avant la fin
cli-rolled-back = Le déploiement précédent est désormais celui par défaut ; redémarrez pour l'utiliser.
cli-reset-prepared = Réinitialisation préparée (stateroot { $stateroot }) ; redémarrez pour l'utiliser.
cli-nothing-running = rien n'est en cours
cli-cancelled = { $path } annulé.
cli-finished-first = { $path } s'est terminé avant de pouvoir être annulé.
cli-automatic-updates = mises à jour automatiques : { $policy }
cli-automatic-last = Dernière vérification : { $when } ({ $outcome })
cli-automatic-next = Prochaine étape : { $when }
cli-automatic-blocked = Retenue : { $reason }
cli-automatic-failures = Échecs consécutifs : { $failures }
cli-config-error = La configuration sur le disque n’est pas utilisée : { $error }
cli-up-to-date = Déjà à jour.
cli-boot-on-trial = Ce démarrage est un essai de la mise à jour : encore { $tries } { $tries ->
    [one] essai
   *[other] essais
 } si les vérifications échouent.
cli-boot-fell-back = Le chargeur d'amorçage est revenu au déploiement précédent ; il devient celui par défaut.
cli-known-bad = { $version } n'est pas installée : elle a déjà échoué sur cette machine ({ $message }). Une image plus récente sera essayée.
cli-marked-good = Ce démarrage est marqué comme bon.
cli-marked-bad = Ce démarrage est marqué comme mauvais : le prochain démarrage revient au déploiement précédent.
cli-last-failure = { $reason ->
    [health-check-failed] La mise à jour vers { $version } n'a pas passé ses vérifications et a été annulée
    [boot-incomplete] La mise à jour vers { $version } n'a pas fini de démarrer et a été annulée
   *[other] La mise à jour vers { $version } a été marquée comme mauvaise et annulée
 } : { $detail }
cli-downloaded = Version { $version } téléchargée ; `berth update --from-downloaded` l'installe.
cli-staged = La version { $version } est prête ; elle démarre au prochain redémarrage.
cli-role-staged = prête
cli-role-booted = en cours
cli-role-rollback = précédente
cli-no-image = (aucune image)
cli-pinned = épinglée
cli-status-deployment = { $image } version { $version }
cli-status-details = empreinte { $digest }  ostree { $commit }  stateroot { $stateroot }
cli-status-signed = signée par { $keys } ({ $requirements }, portée { $scope })
cli-status-unverified = non vérifiée : la politique de signature l'a acceptée sans signature ({ $requirements }, portée { $scope })
cli-status-unlocked = { $kind ->
    [hotfix] déverrouillé (correctif) : les modifications locales de /usr restent jusqu'à la prochaine mise à jour ou restauration
   *[other] déverrouillé (temporaire) : les modifications locales de /usr disparaissent au prochain démarrage
 }
cli-status-drift-clean = /usr est conforme à l'image (vérifié { $when })
cli-status-drifted = /usr diffère de l'image : { $summary } (vérifié { $when } ; `berth verify` le détaille)
cli-verify-clean = { $root } est conforme à son image : { $entries } entrées comparées, les objets du dépôt sont intacts.
cli-verify-drifted = { $root } diffère de son image ({ $entries } entrées comparées) :
cli-verify-changed = modifié  { $path } ({ $what })
cli-verify-added = ajouté   { $path }
cli-verify-removed = supprimé { $path }
cli-verify-corrupt = objet corrompu { $object } : { $detail }
cli-unlocked = { $kind ->
    [hotfix] /usr est modifiable jusqu'à la prochaine mise à jour ou restauration (correctif). Une restauration démarre l'image telle que construite.
   *[other] /usr est modifiable jusqu'au prochain démarrage (temporaire).
 }
cli-state = état : { $state }
cli-last-error = dernière erreur : { $message }
cli-cached-update = mise à jour : { $image } version { $version } ({ $digest })
cli-running = en cours : { $path }
cli-update-available = Mise à jour disponible : { $image } version { $version } ({ $digest }), { $size } à télécharger.
cli-no-update = Pas de mise à jour : { $image } est à jour.
cli-monitor-finished = { $path } : terminé
cli-monitor-failed = { $path } : échec : { $message }

## La page Cockpit (cockpit-plugin/)

cockpit-menu-label = Mises à jour de l’image
cockpit-started-by = Lancé par { $who }
cockpit-install = Installer la mise à jour
cockpit-last-checked = Dernière recherche
cockpit-pinned = Épinglée
cockpit-pin = Épingler
cockpit-unpin = Désépingler
cockpit-cleanup = Supprimer les anciennes versions
cockpit-switch-title = Passer à une autre image
cockpit-switch-label = Image
cockpit-switch-help = Le système suit désormais cette image. Sa version la plus récente est téléchargée et démarre au prochain redémarrage.
cockpit-switch-button = Changer
cockpit-reset-title = Réinitialisation d’usine
cockpit-reset-description = Ce système revient à l’image telle qu’elle a été construite : toutes les modifications de /etc et toutes les données de /var sont supprimées au prochain redémarrage.
cockpit-limited-title = Les modifications demandent un accès administrateur
cockpit-limited-body = Vous voyez l’état des mises à jour. Pour rechercher, installer, revenir en arrière ou modifier les réglages, activez l’accès administrateur avec le bouton en haut de la page.
cockpit-retrying = La page se reconnecte dès qu’il est de retour.
