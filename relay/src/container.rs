//! The relay's own container, named to the agent the way Datadog's clients
//! name theirs, so the agent tags the relay's spans and metrics with the
//! pod's tags (`kube_namespace`, `pod_name`, ...):
//!
//! - the container ID from `/proc/self/cgroup` (dd-trace-go
//!   `internal/container_linux.go`, datadog-go `statsd/container_linux.go`:
//!   the last path element of a line `N:controllers:path` that is a 64-hex
//!   Docker/containerd ID, an ECS task `<32 hex>-<digits>` or a UUID, with
//!   an optional `.scope`), else from `/proc/self/mountinfo` (datadog-go:
//!   `.../<kind>/<id>/.../hostname`, containerd sandboxes aside);
//! - with no ID (cgroup v2 in a private cgroup namespace, the usual
//!   Kubernetes case), the inode of the relay's cgroup directory under
//!   `/sys/fs/cgroup` (the v1 memory controller's, else the v2 node's), as
//!   `in-<inode>`: the agent maps it back to the container. Not in the
//!   host's cgroup namespace, where the inode names no container.
//!
//! Sent as the clients send them: traces carry `Datadog-Container-ID: <id>`
//! and `Datadog-Entity-ID: ci-<id>` (or only `Datadog-Entity-ID: in-<inode>`);
//! DogStatsD lines end with `|c:<id>` (or `|c:in-<inode>`). `DD_EXTERNAL_ENV`,
//! which Datadog's admission controller injects for origin detection, goes
//! with them (`Datadog-External-Env`, `|e:`).
//!
//! Paths can be moved for tests (`TRAEFIK_DATADOG_RELAY_CGROUP_FILE`,
//! `..._MOUNTINFO_FILE`, `..._CGROUP_MOUNT`). Nothing found: nothing sent.

use std::path::{Path, PathBuf};

pub const ENV_CGROUP_FILE: &str = "TRAEFIK_DATADOG_RELAY_CGROUP_FILE";
pub const ENV_MOUNTINFO_FILE: &str = "TRAEFIK_DATADOG_RELAY_MOUNTINFO_FILE";
pub const ENV_CGROUP_MOUNT: &str = "TRAEFIK_DATADOG_RELAY_CGROUP_MOUNT";
/// Linux's fixed inode of the initial (host) cgroup namespace
/// (`include/linux/proc_ns.h`), as the clients compare it.
const HOST_CGROUP_NAMESPACE_INODE: u64 = 0xEFFF_FFFB;
/// Longest file read: a process's cgroup or mountinfo is a few KiB.
const MAX_FILE: u64 = 1 << 20;

/// What names the relay's container to the agent.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Origin {
    /// The container ID, when the cgroup or mountinfo shows one.
    pub container_id: Option<String>,
    /// `ci-<id>` or `in-<inode>`.
    pub entity_id: Option<String>,
    /// `DD_EXTERNAL_ENV`, as injected by the admission controller.
    pub external_env: Option<String>,
}

impl Origin {
    /// Reads the relay's own container (`env`: the process environment).
    pub fn detect(env: &dyn Fn(&str) -> Option<String>) -> Self {
        let var = |k: &str| env(k).filter(|v| !v.trim().is_empty());
        let cgroup = var(ENV_CGROUP_FILE).map_or_else(|| "/proc/self/cgroup".into(), PathBuf::from);
        let mountinfo =
            var(ENV_MOUNTINFO_FILE).map_or_else(|| "/proc/self/mountinfo".into(), PathBuf::from);
        let mount = var(ENV_CGROUP_MOUNT).map_or_else(|| "/sys/fs/cgroup".into(), PathBuf::from);
        let read = |p: &Path| {
            use std::io::Read;
            let mut b = Vec::new();
            std::fs::File::open(p)
                .and_then(|f| f.take(MAX_FILE).read_to_end(&mut b))
                .ok()
                .map(|_| String::from_utf8_lossy(&b).into_owned())
        };
        let cgroup_text = read(&cgroup).unwrap_or_default();
        let container_id = container_id(&cgroup_text)
            .or_else(|| read(&mountinfo).and_then(|m| mountinfo_container_id(&m)));
        let entity_id = match &container_id {
            Some(id) => Some(format!("ci-{id}")),
            None if host_cgroup_namespace() => None,
            None => cgroup_inode(&mount, &cgroup_text),
        };
        Self {
            container_id,
            entity_id,
            external_env: var("DD_EXTERNAL_ENV").filter(|v| header_safe(v)),
        }
    }

    /// Headers for each `/v0.4/traces` request.
    pub fn headers(&self) -> Vec<(&'static str, String)> {
        let mut h = Vec::new();
        if let Some(id) = &self.container_id {
            h.push(("Datadog-Container-ID", id.clone()));
        }
        if let Some(e) = &self.entity_id {
            h.push(("Datadog-Entity-ID", e.clone()));
        }
        if let Some(e) = &self.external_env {
            h.push(("Datadog-External-Env", e.clone()));
        }
        h
    }

    /// The DogStatsD origin fields, `|c:<id>` and `|e:<external env>`:
    /// datadog-go sends the raw ID, or `in-<inode>` without one.
    pub fn statsd_fields(&self) -> String {
        let mut s = String::new();
        let c = self
            .container_id
            .as_deref()
            .or_else(|| self.entity_id.as_deref().filter(|e| e.starts_with("in-")));
        if let Some(c) = c {
            s.push_str("|c:");
            s.push_str(c);
        }
        if let Some(e) = self.external_env.as_deref().filter(|e| !e.contains('|')) {
            s.push_str("|e:");
            s.push_str(e);
        }
        s
    }

    /// For the start line.
    pub fn describe(&self) -> String {
        match (&self.container_id, &self.entity_id) {
            (Some(id), _) => format!("container {id}"),
            (None, Some(e)) => format!("cgroup entity {e}"),
            (None, None) => "no container ID found (the agent cannot add the pod's tags)".into(),
        }
    }
}

/// The relay's origin, detected once (at start, from the process
/// environment) and said in one info line.
pub fn origin() -> &'static Origin {
    static ORIGIN: std::sync::OnceLock<Origin> = std::sync::OnceLock::new();
    ORIGIN.get_or_init(|| {
        let o = Origin::detect(&|k| std::env::var(k).ok());
        info!("origin for the agent: {}", o.describe());
        o
    })
}

fn header_safe(v: &str) -> bool {
    v.bytes().all(|b| (0x20..0x7f).contains(&b))
}

/// `[0-9a-f]{n}` at the start of `s`.
fn hex(s: &[u8], n: usize) -> bool {
    s.len() >= n
        && s[..n]
            .iter()
            .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// The ID a path element ends with, as the clients' regular expression
/// `(uuid|[0-9a-f]{64}|[0-9a-f]{32}-\d+)(?:.scope)?$` finds it.
fn id_at_end(path: &str) -> Option<String> {
    // Bytes, not chars: a path is whatever the file holds, and every byte
    // that matters here is ASCII.
    let s = path.strip_suffix(".scope").unwrap_or(path).as_bytes();
    let tail = |n: usize| (s.len() >= n).then(|| &s[s.len() - n..]);
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    // 64 hex: Docker, containerd, CRI-O (`cri-containerd-<id>`, `docker-<id>`).
    if let Some(t) = tail(64).filter(|t| hex(t, 64)) {
        return Some(text(t));
    }
    // ECS task: 32 hex, '-', digits; the whole last element.
    let last = s.rsplit(|b| *b == b'/').next().unwrap_or(s);
    if last.len() > 33
        && hex(last, 32)
        && last[32] == b'-'
        && last[33..].iter().all(u8::is_ascii_digit)
    {
        return Some(text(last));
    }
    // UUID (Cloud Foundry/Garden, Fargate), '-' or '_' between groups.
    if let Some(u) = tail(36) {
        let seps_ok = [8, 13, 18, 23].iter().all(|&i| matches!(u[i], b'-' | b'_'));
        let groups = [(0, 8), (9, 4), (14, 4), (19, 4), (24, 12)];
        if seps_ok && groups.iter().all(|&(at, n)| hex(&u[at..], n)) {
            return Some(text(u));
        }
    }
    None
}

/// The first container ID in a `/proc/self/cgroup` text.
pub fn container_id(cgroup: &str) -> Option<String> {
    cgroup.lines().find_map(|line| {
        // `N:controllers:path`; the path may hold colons.
        let mut parts = line.splitn(3, ':');
        let n = parts.next()?;
        let _controllers = parts.next()?;
        let path = parts.next()?;
        if n.is_empty() || !n.bytes().all(|b| b.is_ascii_digit()) || path.is_empty() {
            return None;
        }
        id_at_end(path)
    })
}

/// The container ID in a `/proc/self/mountinfo` text: the rightmost
/// `<kind>/<id>/...hostname` on a line, `sandboxes` aside (datadog-go).
pub fn mountinfo_container_id(mountinfo: &str) -> Option<String> {
    mountinfo.lines().find_map(|line| {
        line.split_whitespace()
            .filter(|f| f.ends_with("hostname"))
            .find_map(|f| {
                let parts: Vec<&str> = f.split('/').collect();
                parts.windows(2).rev().find_map(|w| {
                    let id = w[1];
                    let is_id = (id.len() == 64 && hex(id.as_bytes(), 64))
                        || (id.len() == 36 && id_at_end(id).is_some());
                    (is_id && w[0] != "sandboxes" && !w[0].is_empty()).then(|| id.to_owned())
                })
            })
    })
}

/// `in-<inode>` of the relay's cgroup directory: the v1 memory
/// controller's, else the v2 node's (dd-trace-go's order).
pub fn cgroup_inode(mount: &Path, cgroup: &str) -> Option<String> {
    use std::os::unix::fs::MetadataExt;
    let path_of = |controller: &str| {
        cgroup.lines().find_map(|line| {
            let mut parts = line.splitn(3, ':');
            let (_, c, p) = (parts.next()?, parts.next()?, parts.next()?);
            (c == controller).then(|| p.to_owned())
        })
    };
    [("memory", "memory"), ("", "")]
        .iter()
        .find_map(|(controller, sub)| {
            let p = path_of(controller)?;
            let dir = mount.join(sub).join(p.trim_start_matches('/'));
            std::fs::metadata(dir)
                .ok()
                .map(|m| format!("in-{}", m.ino()))
        })
}

fn host_cgroup_namespace() -> bool {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self/ns/cgroup").is_ok_and(|m| m.ino() == HOST_CGROUP_NAMESPACE_INODE)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> String {
        let p = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../testdata/cgroup")
            .join(name);
        let b = std::fs::read(&p).expect("fixture under testdata/cgroup");
        String::from_utf8_lossy(&b).into_owned()
    }

    const DOCKER: &str = "3726184226f5d3147c25fdeab5b60097e378e8a720503a5e19ecfdf29f869860";
    const KUBE: &str = "7b8952daecf4c0e44bbcefe1b5c5ebc7b4839d4eefeccefe694709d3809b6199";

    #[test]
    fn cgroup_v1_docker_and_kubepods() {
        assert_eq!(container_id(&fixture("v1-docker")), Some(DOCKER.to_owned()));
        assert_eq!(container_id(&fixture("v1-kubepods")), Some(KUBE.to_owned()));
    }

    #[test]
    fn ecs_fargate_and_scopes() {
        assert_eq!(
            container_id("1:name=systemd:/ecs/34dc0b5e626f2c5c4c5170e34b10e765-1234567890\n"),
            Some("34dc0b5e626f2c5c4c5170e34b10e765-1234567890".to_owned())
        );
        assert_eq!(
            container_id(
                "1:name=systemd:/ecs/5a0d5ceddf6c44c1928d367a815d890f/38fac3e99302b3622be089dd41e7ccf38aff368a86cc339972075136ee2710ce\n"
            ),
            Some("38fac3e99302b3622be089dd41e7ccf38aff368a86cc339972075136ee2710ce".to_owned())
        );
        assert_eq!(
            container_id(&format!("0::/system.slice/docker-{DOCKER}.scope\n")),
            Some(DOCKER.to_owned())
        );
        assert_eq!(
            container_id(
                "1:name=systemd:/system.slice/garden.service/garden/6f265890-5165-7fab-6b52-18d1\n"
            ),
            None,
            "a short UUID is no ID"
        );
        assert_eq!(
            container_id("1:cpu:/kubepods/pod1/fc0c5a7e-3d44-4c8c-a7a0-4d5c2ec6cfde\n"),
            Some("fc0c5a7e-3d44-4c8c-a7a0-4d5c2ec6cfde".to_owned())
        );
    }

    #[test]
    fn cgroup_v2_and_garbage_have_no_id() {
        assert_eq!(container_id(&fixture("v2")), None);
        assert_eq!(container_id(&fixture("garbage")), None);
        assert_eq!(container_id(""), None);
    }

    #[test]
    fn mountinfo_names_the_container_on_cgroup_v2() {
        let line = format!(
            "2040 2023 0:123 /var/lib/docker/containers/{DOCKER}/hostname /etc/hostname rw,relatime - ext4 /dev/sda1 rw\n"
        );
        assert_eq!(mountinfo_container_id(&line), Some(DOCKER.to_owned()));
        let sandbox = format!(
            "1 2 0:1 /var/lib/containerd/io.containerd.grpc.v1.cri/sandboxes/{KUBE}/hostname /etc/hostname rw - ext4 /dev/x rw\n"
        );
        assert_eq!(mountinfo_container_id(&sandbox), None);
        assert_eq!(mountinfo_container_id(&fixture("garbage")), None);
    }

    #[test]
    fn inode_of_the_cgroup_directory() {
        use std::os::unix::fs::MetadataExt;
        let mount = std::env::temp_dir().join(format!("tdp-cgroup-{}", std::process::id()));
        let node = mount.join("kubepods/pod1/abc");
        std::fs::create_dir_all(&node).expect("dirs");
        let ino = std::fs::metadata(&node).expect("meta").ino();
        assert_eq!(
            cgroup_inode(&mount, "0::/kubepods/pod1/abc\n"),
            Some(format!("in-{ino}"))
        );
        std::fs::create_dir_all(mount.join("memory/kubepods/pod1/abc")).expect("v1 dirs");
        let v1 = std::fs::metadata(mount.join("memory/kubepods/pod1/abc"))
            .expect("meta")
            .ino();
        assert_eq!(
            cgroup_inode(
                &mount,
                "4:memory:/kubepods/pod1/abc\n0::/kubepods/pod1/abc\n"
            ),
            Some(format!("in-{v1}"))
        );
        assert_eq!(cgroup_inode(&mount, "0::/nowhere\n"), None);
        std::fs::remove_dir_all(&mount).expect("cleanup");
    }

    #[test]
    fn headers_and_statsd_fields_as_the_clients_send_them() {
        let o = Origin {
            container_id: Some(DOCKER.into()),
            entity_id: Some(format!("ci-{DOCKER}")),
            external_env: Some("it-false,cn-relay,pu-abc".into()),
        };
        assert_eq!(
            o.headers(),
            vec![
                ("Datadog-Container-ID", DOCKER.to_owned()),
                ("Datadog-Entity-ID", format!("ci-{DOCKER}")),
                (
                    "Datadog-External-Env",
                    "it-false,cn-relay,pu-abc".to_owned()
                ),
            ]
        );
        assert_eq!(
            o.statsd_fields(),
            format!("|c:{DOCKER}|e:it-false,cn-relay,pu-abc")
        );
        let inode = Origin {
            container_id: None,
            entity_id: Some("in-4242".into()),
            external_env: None,
        };
        assert_eq!(
            inode.headers(),
            vec![("Datadog-Entity-ID", "in-4242".to_owned())]
        );
        assert_eq!(inode.statsd_fields(), "|c:in-4242");
        assert_eq!(Origin::default().headers(), vec![]);
        assert_eq!(Origin::default().statsd_fields(), "");
    }

    #[test]
    fn detect_reads_the_files_it_is_pointed_at() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../testdata/cgroup");
        let docker = dir.join("v1-docker").display().to_string();
        let garbage = dir.join("garbage").display().to_string();
        let env = |k: &str| match k {
            ENV_CGROUP_FILE => Some(docker.clone()),
            ENV_MOUNTINFO_FILE => Some(garbage.clone()),
            ENV_CGROUP_MOUNT => Some("/nonexistent".to_owned()),
            "DD_EXTERNAL_ENV" => Some("it-false,cn-relay".to_owned()),
            _ => None,
        };
        let o = Origin::detect(&env);
        assert_eq!(o.container_id.as_deref(), Some(DOCKER));
        assert_eq!(o.entity_id, Some(format!("ci-{DOCKER}")));
        assert_eq!(o.external_env.as_deref(), Some("it-false,cn-relay"));
        let env = |k: &str| match k {
            ENV_CGROUP_FILE | ENV_MOUNTINFO_FILE => Some(garbage.clone()),
            ENV_CGROUP_MOUNT => Some("/nonexistent".to_owned()),
            _ => None,
        };
        let o = Origin::detect(&env);
        assert_eq!((o.container_id, o.entity_id), (None, None));
    }
}
