//! Trusted updates: the containers signature policy, enforced before anything is imported.
//!
//! GPG "simple signing": images signed by skopeo itself (`skopeo copy --sign-by`, keys made
//! by gpg, signatures in a file:// lookaside store named in registries.d); for every case,
//! Berth's verdict must equal skopeo's under the same policy and registries.d, and the
//! expected one. Sigstore: cosign's format (an ECDSA P-256 signature over the simple-signing
//! payload, in the layer annotation of the `sha256-<hex>.sig` tag) made by openssl and
//! uploaded with curl, since Debian's skopeo refuses sigstore ("sigstore disabled").

mod common;

use berth_engine::{progress, Cancel, Config, Engine, ImageRef};
use common::Env;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

fn run(cmd: &mut Command) -> Output {
    let out = cmd.stdin(Stdio::null()).output().expect("spawn");
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// A GnuPG home with a key pair; gpg-agent is stopped when it is dropped.
struct Gpg {
    home: PathBuf,
}

impl Gpg {
    fn new(home: &Path) -> Gpg {
        std::fs::create_dir_all(home).unwrap();
        std::fs::set_permissions(home, std::os::unix::fs::PermissionsExt::from_mode(0o700))
            .unwrap();
        Gpg { home: home.into() }
    }

    fn gpg(&self) -> Command {
        let mut c = Command::new("gpg");
        c.arg("--homedir").arg(&self.home).arg("--batch");
        c
    }

    /// Makes a signing key for `email` and exports its public part to `export`.
    fn key(&self, email: &str, export: &Path) -> String {
        run(self.gpg().args([
            "--passphrase",
            "",
            "--quick-gen-key",
            &format!("Berth test <{email}>"),
            "default",
            "default",
            "never",
        ]));
        let out = run(self
            .gpg()
            .args(["--with-colons", "--list-keys", &format!("<{email}>")]));
        let fpr = String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .find_map(|l| {
                l.strip_prefix("fpr:")
                    .map(|r| r.trim_matches(':').to_string())
            })
            .expect("a fingerprint");
        let out = run(self.gpg().args(["--export", &fpr]));
        std::fs::write(export, out.stdout).unwrap();
        fpr
    }
}

impl Drop for Gpg {
    fn drop(&mut self) {
        let _ = Command::new("gpgconf")
            .arg("--homedir")
            .arg(&self.home)
            .args(["--kill", "gpg-agent"])
            .status();
    }
}

/// Signing keys, the signature stores and the configuration around a test [`Env`].
struct Trust {
    dir: PathBuf,
    reg: String,
    layout: PathBuf,
    base_config: Config,
    gpg: Gpg,
    trusted_key: PathBuf,
    trusted: String,
    other: String,
    /// The file:// lookaside store.
    sigs: PathBuf,
    /// registries.d naming the store (and reading sigstore attachments).
    registries_d: PathBuf,
    cosign_key: PathBuf,
    cosign_pub: PathBuf,
    cosign_other: PathBuf,
}

impl Trust {
    fn new(env: &Env) -> Trust {
        let gpg = Gpg::new(&env.dir.join("gnupg"));
        let trusted_key = env.dir.join("trusted.gpg");
        let trusted = gpg.key("trusted@berth.test", &trusted_key);
        let other = gpg.key("other@berth.test", &env.dir.join("other.gpg"));
        let sigs = env.dir.join("sigs");
        let registries_d = env.dir.join("registries.d");
        std::fs::create_dir_all(&sigs).unwrap();
        std::fs::create_dir_all(&registries_d).unwrap();
        std::fs::write(
            registries_d.join("berth-test.yaml"),
            format!(
                "docker:\n  {}:\n    lookaside: file://{}\n    use-sigstore-attachments: true\n",
                env.registry.addr,
                sigs.display()
            ),
        )
        .unwrap();
        let ec_key = |name: &str| {
            let key = env.dir.join(format!("{name}.key"));
            run(Command::new("openssl")
                .args([
                    "ecparam",
                    "-name",
                    "prime256v1",
                    "-genkey",
                    "-noout",
                    "-out",
                ])
                .arg(&key));
            let public = env.dir.join(format!("{name}.pub"));
            run(Command::new("openssl")
                .args(["ec", "-pubout", "-in"])
                .arg(&key)
                .arg("-out")
                .arg(&public));
            (key, public)
        };
        let (cosign_key, cosign_pub) = ec_key("cosign");
        let (cosign_other, _) = ec_key("cosign-other");
        Trust {
            dir: env.dir.clone(),
            reg: env.registry.addr.clone(),
            layout: env.layout.clone(),
            base_config: env.config.clone(),
            gpg,
            trusted_key,
            trusted,
            other,
            sigs,
            registries_d,
            cosign_key,
            cosign_pub,
            cosign_other,
        }
    }

    fn reg(&self) -> &str {
        &self.reg
    }

    /// Pushes layout tag `tag` to `repo:2`, signed by `key` (skopeo --sign-by) or not.
    fn push(&self, tag: &str, repo: &str, key: Option<&str>) -> String {
        let dest = format!("{}/{repo}:2", self.reg());
        let mut c = Command::new("skopeo");
        c.args(["copy", "-q", "--dest-tls-verify=false", "--registries.d"])
            .arg(&self.registries_d)
            .env("GNUPGHOME", &self.gpg.home);
        if let Some(k) = key {
            c.args(["--sign-by", k]);
        }
        c.arg(format!("oci:{}:{tag}", self.layout.display()))
            .arg(format!("docker://{dest}"));
        run(&mut c);
        dest
    }

    fn digest(&self, image: &str) -> String {
        let out = run(Command::new("skopeo").args([
            "inspect",
            "--tls-verify=false",
            "--format",
            "{{.Digest}}",
            &format!("docker://{image}"),
        ]));
        String::from_utf8(out.stdout).unwrap().trim().to_string()
    }

    /// The lookaside path of signature 1 of `repo` at `digest`.
    fn sig_path(&self, repo: &str, digest: &str) -> PathBuf {
        self.sigs
            .join(format!("{repo}@{}", digest.replace(':', "=")))
            .join("signature-1")
    }

    /// A cosign signature by `key` claiming `identity` and `digest`, attached to `repo`'s
    /// image `attach_to` (the `.sig` tag of that digest).
    fn cosign(&self, key: &Path, repo: &str, identity: &str, digest: &str, attach_to: &str) {
        let work = self.dir.join("cosign-work");
        std::fs::create_dir_all(&work).unwrap();
        let payload = json!({
            "critical": {
                "identity": {"docker-reference": identity},
                "image": {"docker-manifest-digest": digest},
                "type": "cosign container image signature"
            },
            "optional": null
        })
        .to_string();
        let payload_path = work.join("payload.json");
        std::fs::write(&payload_path, &payload).unwrap();
        let sig = run(Command::new("openssl")
            .args(["dgst", "-sha256", "-sign"])
            .arg(key)
            .arg(&payload_path))
        .stdout;
        use base64::Engine as _;
        let sig = base64::engine::general_purpose::STANDARD.encode(sig);
        let config = self.upload_blob(repo, b"{}");
        let layer = self.upload_blob(repo, payload.as_bytes());
        let manifest = json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": config,
                "size": 2
            },
            "layers": [{
                "mediaType": "application/vnd.dev.cosign.simplesigning.v1+json",
                "digest": layer,
                "size": payload.len(),
                "annotations": {"dev.cosignproject.cosign/signature": sig}
            }]
        })
        .to_string();
        let tag = format!("{}.sig", attach_to.replace(':', "-"));
        run(Command::new("curl")
            .args(["-sSf", "-X", "PUT", "-H"])
            .arg("Content-Type: application/vnd.oci.image.manifest.v1+json")
            .arg("--data-binary")
            .arg(manifest)
            .arg(format!("http://{}/v2/{repo}/manifests/{tag}", self.reg())));
    }

    fn upload_blob(&self, repo: &str, data: &[u8]) -> String {
        let digest = berth_testkit::image::sha256(data);
        let out = run(Command::new("curl").args([
            "-sSf",
            "-X",
            "POST",
            "-o",
            "/dev/null",
            "-w",
            "%header{location}",
            &format!("http://{}/v2/{repo}/blobs/uploads/", self.reg()),
        ]));
        let location = String::from_utf8(out.stdout).unwrap();
        let sep = if location.contains('?') { '&' } else { '?' };
        let file = self.dir.join("cosign-work/blob");
        std::fs::write(&file, data).unwrap();
        let url = if location.starts_with('/') {
            format!("http://{}{location}{sep}digest={digest}", self.reg())
        } else {
            format!("{location}{sep}digest={digest}")
        };
        run(Command::new("curl")
            .args([
                "-sSf",
                "-X",
                "PUT",
                "-H",
                "Content-Type: application/octet-stream",
            ])
            .arg("--data-binary")
            .arg(format!("@{}", file.display()))
            .arg(url));
        digest
    }

    fn write_policy(&self, name: &str, policy: &Value) -> PathBuf {
        let path = self.dir.join(format!("policy-{name}.json"));
        std::fs::write(&path, serde_json::to_vec_pretty(policy).unwrap()).unwrap();
        path
    }

    fn config(&self, policy: &Path) -> Config {
        Config {
            signature_policy: Some(policy.into()),
            registries_d: Some(self.registries_d.clone()),
            ..self.base_config.clone()
        }
    }

    fn signed_by(&self, key: &Path) -> Value {
        json!([{"type": "signedBy", "keyType": "GPGKeys", "keyPath": key}])
    }

    fn sigstore_signed(&self) -> Value {
        json!([{"type": "sigstoreSigned", "keyPath": self.cosign_pub}])
    }

    /// Berth's verdict on `image` under `policy`: a check reads the manifest and config and
    /// nothing else. Err carries the error's D-Bus name and message.
    async fn berth(
        &self,
        engine_at: &Path,
        policy: &Path,
        image: &str,
    ) -> Result<berth_engine::trust::Verification, String> {
        let engine = Engine::open(engine_at, self.config(policy)).unwrap();
        match engine.check(Some(&ImageRef::parse(image).unwrap())).await {
            Ok(r) => Ok(r.verification.expect("a check of a new image verifies it")),
            Err(e) => Err(format!("{}: {e}", e.name())),
        }
    }

    /// skopeo's verdict on `image` (a docker:// or oci: reference) under the same files.
    fn skopeo(&self, policy: &Path, image: &str) -> bool {
        let out = self.dir.join("skopeo-out");
        let _ = std::fs::remove_dir_all(&out);
        let source = if image.starts_with("oci:") {
            image.to_string()
        } else {
            format!("docker://{image}")
        };
        Command::new("skopeo")
            .args(["copy", "-q", "--src-tls-verify=false", "--policy"])
            .arg(policy)
            .arg("--registries.d")
            .arg(&self.registries_d)
            .arg(source)
            .arg(format!("dir:{}", out.display()))
            .stdin(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .unwrap()
            .success()
    }
}

const OCI_ACCEPT: &str = "Accept: application/vnd.oci.image.manifest.v1+json";

/// A policy whose `default` is `default` and whose docker scope `scope` is `reqs`.
fn policy(default: Value, scope: &str, reqs: Value) -> Value {
    json!({"default": default, "transports": {"docker": {scope: reqs}}})
}

fn reject() -> Value {
    json!([{"type": "reject"}])
}

fn accept() -> Value {
    json!([{"type": "insecureAcceptAnything"}])
}

#[tokio::test(flavor = "multi_thread")]
async fn gpg_verdicts_equal_skopeos() {
    let env = Env::new("trust-gpg");
    let t = Trust::new(&env);
    let engine_at = env.sysroot();
    env.install_at(&engine_at, &env.image("1")).await.unwrap();
    let reg = t.reg().to_string();
    let signed = t.push("2", "signed/os", Some(&t.trusted));
    let by_other = t.push("2", "othersigned/os", Some(&t.other));
    let unsigned = t.push("2", "unsigned/os", None);
    let tampered = t.push("2", "tampered/os", Some(&t.trusted));
    let v2 = t.digest(&signed);
    let sig = t.sig_path("tampered/os", &v2);
    let mut bytes = std::fs::read(&sig).unwrap();
    let n = bytes.len();
    bytes[n - 8] ^= 0x55;
    std::fs::write(&sig, bytes).unwrap();
    // A valid signature of the trusted key, but for another repository.
    let copied = t.push("2", "copied/os", None);
    let dir = t.sig_path("copied/os", &v2);
    std::fs::create_dir_all(dir.parent().unwrap()).unwrap();
    std::fs::copy(t.sig_path("signed/os", &v2), &dir).unwrap();
    // A valid signature of the trusted key for this name, but of another image (v3).
    let other_digest = t.push("3", "otherdigest/os", Some(&t.trusted));
    let v3 = t.digest(&other_digest);
    assert_ne!(v2, v3);
    t.push("2", "otherdigest/os", None);
    let dir = t.sig_path("otherdigest/os", &v2);
    std::fs::create_dir_all(dir.parent().unwrap()).unwrap();
    std::fs::copy(t.sig_path("otherdigest/os", &v3), &dir).unwrap();
    let layout = format!("oci:{}:2", env.layout.display());
    let layout_dir = std::fs::canonicalize(&env.layout).unwrap();

    let key = t.signed_by(&t.trusted_key);
    let by_key = policy(reject(), &reg, key.clone());
    let cases: Vec<(&str, Value, &str, bool)> = vec![
        ("signed with the trusted key", by_key.clone(), &signed, true),
        (
            "signed with a key not in the policy",
            by_key.clone(),
            &by_other,
            false,
        ),
        ("unsigned", by_key.clone(), &unsigned, false),
        ("a tampered signature", by_key.clone(), &tampered, false),
        (
            "another repository's signature",
            by_key.clone(),
            &copied,
            false,
        ),
        (
            "another digest's signature",
            by_key.clone(),
            &other_digest,
            false,
        ),
        ("reject", policy(accept(), &reg, reject()), &signed, false),
        (
            "insecureAcceptAnything",
            policy(reject(), &reg, accept()),
            &unsigned,
            true,
        ),
        (
            "a specific scope over the registry's",
            json!({"default": accept(), "transports": {"docker": {
                reg.clone(): accept(),
                format!("{reg}/unsigned"): key.clone()}}}),
            &unsigned,
            false,
        ),
        (
            "a specific scope over default",
            policy(reject(), &format!("{reg}/unsigned/os"), accept()),
            &unsigned,
            true,
        ),
        (
            "default when no scope names it",
            policy(reject(), "example.com", accept()),
            &unsigned,
            false,
        ),
        (
            "an oci: layout needing a signature",
            json!({"default": accept(), "transports": {"oci": {layout_dir.to_str().unwrap(): key.clone()}}}),
            &layout,
            false,
        ),
        (
            "an oci: layout under the oci transport's scope",
            json!({"default": reject(), "transports": {"oci": {"": accept()}}}),
            &layout,
            true,
        ),
    ];
    for (what, policy, image, expected) in cases {
        let path = t.write_policy("case", &policy);
        let skopeo = t.skopeo(&path, image);
        let berth = t.berth(&engine_at, &path, image).await;
        assert_eq!(skopeo, expected, "skopeo on {what} ({image})");
        assert_eq!(
            berth.is_ok(),
            expected,
            "Berth on {what} ({image}): {berth:?}"
        );
        if let Err(e) = berth {
            assert!(e.starts_with("NotTrusted: "), "{what}: {e}");
        }
    }

    // The verdict names the requirement and the scope; acceptance names the key.
    let path = t.write_policy("key", &by_key);
    let e = t.berth(&engine_at, &path, &unsigned).await.unwrap_err();
    assert!(
        e.contains("signedBy")
            && e.contains(&format!("docker:{reg}"))
            && e.contains("no signature exists"),
        "{e}"
    );
    let v = t.berth(&engine_at, &path, &signed).await.unwrap();
    assert_eq!(v.keys, vec![t.trusted.clone()]);
    assert_eq!(v.identities, vec![signed.clone()]);
    assert_eq!(v.requirements, ["signedBy"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn sigstore_signatures_are_checked_with_the_public_key() {
    let env = Env::new("trust-sigstore");
    let t = Trust::new(&env);
    let engine_at = env.sysroot();
    env.install_at(&engine_at, &env.image("1")).await.unwrap();
    let reg = t.reg().to_string();
    let image = |repo: &str| t.push("2", repo, None);
    let v2 = t.digest(&image("cosign/signed"));
    let v3 = t.digest(&t.push("3", "cosign/scratch", None));
    let signed = format!("{reg}/cosign/signed:2");
    t.cosign(&t.cosign_key, "cosign/signed", &signed, &v2, &v2);
    let by_other = image("cosign/other");
    t.cosign(&t.cosign_other, "cosign/other", &by_other, &v2, &v2);
    let unsigned = image("cosign/unsigned");
    let copied = image("cosign/copied");
    t.cosign(&t.cosign_key, "cosign/copied", &signed, &v2, &v2);
    let other_digest = image("cosign/digest");
    t.cosign(&t.cosign_key, "cosign/digest", &other_digest, &v3, &v2);
    // A tampered signature: the trusted key's signature over another payload.
    let tampered = image("cosign/tampered");
    t.cosign(&t.cosign_key, "cosign/tampered", &tampered, &v2, &v2);
    let sig_tag = format!("{}.sig", v2.replace(':', "-"));
    let manifest = run(Command::new("curl")
        .args(["-sSf", "-H", OCI_ACCEPT])
        .arg(format!("http://{reg}/v2/cosign/signed/manifests/{sig_tag}")))
    .stdout;
    let signed_sig = serde_json::from_slice::<Value>(&manifest).unwrap()["layers"][0]
        ["annotations"]["dev.cosignproject.cosign/signature"]
        .clone();
    let manifest = run(Command::new("curl")
        .args(["-sSf", "-H", OCI_ACCEPT])
        .arg(format!(
            "http://{reg}/v2/cosign/tampered/manifests/{sig_tag}"
        )))
    .stdout;
    let mut m: Value = serde_json::from_slice(&manifest).unwrap();
    m["layers"][0]["annotations"]["dev.cosignproject.cosign/signature"] = signed_sig;
    run(Command::new("curl")
        .args(["-sSf", "-X", "PUT", "-H"])
        .arg("Content-Type: application/vnd.oci.image.manifest.v1+json")
        .arg("--data-binary")
        .arg(m.to_string())
        .arg(format!(
            "http://{reg}/v2/cosign/tampered/manifests/{sig_tag}"
        )));

    let by_key = t.write_policy("cosign", &policy(reject(), &reg, t.sigstore_signed()));
    for (what, image, expected) in [
        ("signed with the trusted key", &signed, true),
        ("signed with another key", &by_other, false),
        ("unsigned", &unsigned, false),
        ("a tampered signature", &tampered, false),
        ("another repository's signature", &copied, false),
        ("another digest's signature", &other_digest, false),
    ] {
        let berth = t.berth(&engine_at, &by_key, image).await;
        assert_eq!(berth.is_ok(), expected, "{what} ({image}): {berth:?}");
        if let Err(e) = berth {
            assert!(
                e.starts_with("NotTrusted: ") && e.contains("sigstoreSigned"),
                "{what}: {e}"
            );
        }
    }
    // Attachments are read only where registries.d says so, as containers/image does.
    let engine = Engine::open(
        &engine_at,
        Config {
            registries_d: Some(env.dir.join("no-registries.d")),
            ..t.config(&by_key)
        },
    )
    .unwrap();
    let e = engine
        .check(Some(&ImageRef::parse(&signed).unwrap()))
        .await
        .unwrap_err();
    assert_eq!(e.name(), "NotTrusted", "{e}");
    // An OCI layout carries no attachments.
    let layout = t.write_policy("cosign-oci", &json!({"default": t.sigstore_signed()}));
    let e = t
        .berth(
            &engine_at,
            &layout,
            &format!("oci:{}:2", env.layout.display()),
        )
        .await
        .unwrap_err();
    assert!(e.starts_with("NotTrusted: "), "{e}");

    // Accepted: the key id is sha256 of the public key's DER.
    let v = t.berth(&engine_at, &by_key, &signed).await.unwrap();
    let der = run(Command::new("openssl")
        .args(["pkey", "-pubin", "-outform", "DER", "-in"])
        .arg(&t.cosign_pub))
    .stdout;
    assert_eq!(
        v.keys,
        [format!(
            "sha256:{}",
            berth_testkit::image::sha256(&der).trim_start_matches("sha256:")
        )]
    );
    assert_eq!(v.requirements, ["sigstoreSigned"]);
}

/// Pull, update and switch refuse before anything is stored; a broken policy is a
/// configuration error and nothing is pulled.
#[tokio::test(flavor = "multi_thread")]
async fn a_refused_image_leaves_nothing_behind() {
    let env = Env::new("trust-nothing");
    let t = Trust::new(&env);
    let sysroot = env.sysroot();
    env.install_at(&sysroot, &env.image("1")).await.unwrap();
    let unsigned = t.push("2", "berth/demo", None);
    let strict = t.write_policy(
        "strict",
        &policy(reject(), t.reg(), t.signed_by(&t.trusted_key)),
    );
    let engine = Engine::open(&sysroot, t.config(&strict)).unwrap();
    let before = stored(&sysroot);
    let image = ImageRef::parse(&unsigned).unwrap();
    let e = engine
        .pull(&image, progress::silent(), &Cancel::new())
        .await
        .unwrap_err();
    assert_eq!(e.name(), "NotTrusted", "{e}");
    let e = engine
        .switch(&image, false, progress::silent(), &Cancel::new())
        .await
        .unwrap_err();
    assert_eq!(e.name(), "NotTrusted", "{e}");
    // The booted image is followed as berth/demo:1; make its tag move to the unsigned v2.
    env.registry.push(&env.layout, "2", "berth/demo").unwrap();
    let tracked = ImageRef::parse(&format!("{}/berth/demo:1", t.reg())).unwrap();
    run(Command::new("skopeo").args([
        "copy",
        "-q",
        "--src-tls-verify=false",
        "--dest-tls-verify=false",
        &format!("docker://{unsigned}"),
        &format!("docker://{tracked}"),
    ]));
    let e = engine
        .update(Default::default(), progress::silent(), &Cancel::new())
        .await
        .unwrap_err();
    assert_eq!(e.name(), "NotTrusted", "{e}");
    assert_eq!(
        stored(&sysroot),
        before,
        "a refused image left something behind"
    );
    assert_eq!(common::deployment_versions(&engine), ["1"]);

    for (what, file) in [
        ("missing", None),
        ("malformed", Some("{\"default\": [{\"type\": \"acceptEverything\"}]}")),
        ("unknown key", Some("{\"default\": [{\"type\": \"signedBy\", \"keyType\": \"GPGKeys\", \"keyPath\": \"/nonexistent/key.gpg\"}]}")),
    ] {
        let path = env.dir.join(format!("policy-{}.json", what.replace(' ', "-")));
        if let Some(text) = file {
            std::fs::write(&path, text).unwrap();
        }
        let engine = Engine::open(&sysroot, t.config(&path)).unwrap();
        let e = engine
            .pull(&image, progress::silent(), &Cancel::new())
            .await
            .unwrap_err();
        assert_eq!(e.name(), "InvalidConfiguration", "{what}: {e}");
        assert_eq!(stored(&sysroot), before, "{what}");
    }
}

/// Refs in the repository and blobs in the cache.
fn stored(sysroot: &Path) -> (Vec<String>, Vec<String>) {
    let refs = run(Command::new("ostree")
        .arg(format!("--repo={}/ostree/repo", sysroot.display()))
        .arg("refs"))
    .stdout;
    let mut refs: Vec<String> = String::from_utf8(refs)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect();
    refs.sort();
    let mut blobs = Vec::new();
    let cache = sysroot.join("ostree/berth/cache");
    for entry in walk(&cache) {
        blobs.push(entry.strip_prefix(&cache).unwrap().display().to_string());
    }
    blobs.sort();
    (refs, blobs)
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

/// The verification is recorded with the deployment; an unsigned image does not replace a
/// signed booted one unless allow-unverified is given.
#[tokio::test(flavor = "multi_thread")]
async fn status_records_the_signature_and_unverified_needs_allowing() {
    let env = Env::new("trust-status");
    let t = Trust::new(&env);
    let sysroot = env.sysroot();
    env.install_at(&sysroot, &env.image("1")).await.unwrap();
    let signed = t.push("2", "signed/os", Some(&t.trusted));
    let unsigned = t.push("3", "unsigned/os", None);
    let reg = t.reg().to_string();
    let path = t.write_policy(
        "mixed",
        &json!({"default": reject(), "transports": {"docker": {
            format!("{reg}/signed"): t.signed_by(&t.trusted_key),
            format!("{reg}/unsigned"): accept()}}}),
    );
    let engine = Engine::open(&sysroot, t.config(&path)).unwrap();
    let booted = engine.status().unwrap().status.booted.unwrap();
    let installed = booted.image.unwrap().verification.unwrap();
    assert!(!installed.is_signed(), "{installed:?}");
    assert_eq!(installed.requirements, ["insecureAcceptAnything"]);
    common::stage_switch(&engine, &ImageRef::parse(&signed).unwrap()).await;
    let host = engine.status().unwrap();
    let staged = host.status.staged.clone().unwrap().image.unwrap();
    assert_eq!(
        staged.verification.as_ref().unwrap().keys,
        vec![t.trusted.clone()]
    );
    let json = serde_json::to_value(&host).unwrap();
    assert_eq!(
        json["status"]["staged"]["image"]["image"]["signature"],
        "containerPolicy"
    );
    assert_eq!(
        json["status"]["staged"]["image"]["verification"]["requirements"],
        json!(["signedBy"])
    );
    engine.reboot().unwrap();

    let image = ImageRef::parse(&unsigned).unwrap();
    let e = engine
        .switch(&image, false, progress::silent(), &Cancel::new())
        .await
        .unwrap_err();
    assert_eq!(e.name(), "NotTrusted", "{e}");
    assert!(e.to_string().contains("allow-unverified"), "{e}");
    let out = engine
        .switch(&image, true, progress::silent(), &Cancel::new())
        .await
        .unwrap();
    assert!(
        matches!(out, berth_engine::UpdateOutcome::Staged { .. }),
        "{out:?}"
    );
    let json = serde_json::to_value(engine.status().unwrap()).unwrap();
    assert_eq!(
        json["status"]["staged"]["image"]["image"]["signature"],
        "insecure"
    );
    assert_eq!(
        json["status"]["booted"]["image"]["image"]["signature"],
        "containerPolicy"
    );
}

/// Over D-Bus with real polkitd: an update to an unsigned image is refused when the policy
/// wants a key, and the refusal is berthd's last error; a signed booted image is replaced
/// by an unsigned one only with allow-unverified, which needs its own polkit action.
#[tokio::test(flavor = "multi_thread")]
async fn over_dbus_refusals_and_the_downgrade_trust_action() {
    use berth_testkit::bus::users;
    use common::service::{berth_call, Service};
    let mut svc = Service::start("trust-bus").await;
    let t = Trust::new(&svc.env);
    let reg = t.reg().to_string();
    let signed = t.push("2", "signed/os", Some(&t.trusted));
    let policy = t.write_policy(
        "bus",
        &json!({"default": reject(), "transports": {"docker": {
            format!("{reg}/signed"): t.signed_by(&t.trusted_key),
            format!("{reg}/berth/demo"): accept()}}}),
    );
    std::fs::write(
        &svc.config,
        format!(
            "insecure-registries = [\"{reg}\"]\nsignature-policy = \"{}\"\nregistries-d = \"{}\"\n",
            policy.display(),
            t.registries_d.display()
        ),
    )
    .unwrap();
    svc.kill_and_restart_berthd();
    let m = svc.manager().await;
    let out = berth_call(&svc, None, false, "Switch", &signed);
    assert!(
        out.ends_with(" success"),
        "{out}: {}",
        m.error_message().await.unwrap()
    );
    let out = berth_call(&svc, None, false, "Reboot", "");
    assert_eq!(out, "OK");
    svc.kill_and_restart_berthd();
    let m = svc.manager().await;
    let booted = m.booted().await.unwrap();
    let get = |k: &str| booted.get(k).cloned().map(|v| format!("{v:?}"));
    assert!(get("signature").unwrap().contains("signed"), "{booted:?}");
    assert!(get("signed-by").unwrap().contains(&t.trusted), "{booted:?}");

    // The tag the machine follows now names an unsigned image.
    run(Command::new("skopeo").args([
        "copy",
        "-q",
        "--src-tls-verify=false",
        "--dest-tls-verify=false",
        &format!("oci:{}:3", t.layout.display()),
        &format!("docker://{signed}"),
    ]));
    let out = berth_call(&svc, None, false, "Update", "");
    assert!(out.ends_with(" org.berth.Berth1.Error.NotTrusted"), "{out}");
    assert_eq!(
        m.error_name().await.unwrap(),
        "org.berth.Berth1.Error.NotTrusted"
    );
    let message = m.error_message().await.unwrap();
    assert!(
        message.contains("signedBy") && message.contains("no signature exists"),
        "{message}"
    );

    // berth-granted may switch to demo:3 (a test rule), an image the policy lets in unsigned.
    let demo3 = format!("{reg}/berth/demo:3");
    for user in [None, Some(users::GRANTED)] {
        let out = berth_call(&svc, user, false, "Switch", &demo3);
        assert!(
            out.ends_with(" org.berth.Berth1.Error.NotTrusted"),
            "{user:?}: {out}"
        );
        let message = m.error_message().await.unwrap();
        assert!(message.contains("allow-unverified"), "{message}");
    }
    let out = berth_call(
        &svc,
        Some(users::GRANTED),
        false,
        "SwitchUnverified",
        &demo3,
    );
    assert!(
        out.starts_with("ERR") && out.contains("org.berth.berth1.downgrade-trust"),
        "{out}"
    );
    assert!(m.staged().await.unwrap().is_empty());
    // berth-desktop holds every Berth action (a test rule standing for an administrator).
    let out = berth_call(
        &svc,
        Some(users::DESKTOP),
        false,
        "SwitchUnverified",
        &demo3,
    );
    assert!(out.ends_with(" success"), "{out}");
    let staged = m.staged().await.unwrap();
    assert!(
        format!("{:?}", staged.get("signature").unwrap()).contains("unverified"),
        "{staged:?}"
    );
}
