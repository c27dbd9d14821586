//! The Kubernetes manifests rendered from the Helm chart (`deploy/kubernetes/`), run as
//! processes on 127.0.0.1 with exactly their container args and environment, on the
//! in-process S3 server.

mod common;

use common::s3::*;
use common::*;
use std::path::Path;

/// The Deployments of a manifest file rendered from the Helm chart: name -> (replicas, the
/// first container).
fn rendered_deployments(
    path: &Path,
) -> std::collections::HashMap<String, (u64, serde_yaml::Value)> {
    use serde::Deserialize;
    let text = std::fs::read_to_string(path).expect("rendered manifests");
    let mut out = std::collections::HashMap::new();
    for doc in serde_yaml::Deserializer::from_str(&text) {
        let v = serde_yaml::Value::deserialize(doc).expect("YAML");
        if v["kind"].as_str() != Some("Deployment") {
            continue;
        }
        let name = v["metadata"]["name"].as_str().expect("name").to_string();
        let replicas = v["spec"]["replicas"].as_u64().unwrap_or(1);
        let container = v["spec"]["template"]["spec"]["containers"][0].clone();
        out.insert(name, (replicas, container));
    }
    out
}

/// Replaces Kubernetes' `$(NAME)` references in `s` by the variables defined so far.
fn expand_k8s(s: &str, env: &[(String, String)]) -> String {
    let mut s = s.to_string();
    for (k, v) in env {
        s = s.replace(&format!("$({k})"), v);
    }
    s
}

/// A container of the rendered manifests as a process: its environment resolved as the kubelet
/// would (the downward API's pod IP, the Secret's keys; the S3 endpoint, a Service of the
/// cluster, becomes the test's server), and its args with `$(VAR)` expanded.
fn pod_command(
    container: &serde_yaml::Value,
    pod_ip: &str,
    endpoint: &str,
) -> (Vec<String>, Vec<(String, String)>) {
    let mut env: Vec<(String, String)> = Vec::new();
    for e in container["env"].as_sequence().expect("env") {
        let name = e["name"].as_str().expect("env name").to_string();
        let value = if let Some(v) = e["value"].as_str() {
            expand_k8s(v, &env)
        } else if e["valueFrom"]["fieldRef"]["fieldPath"].as_str() == Some("status.podIP") {
            pod_ip.to_string()
        } else {
            match e["valueFrom"]["secretKeyRef"]["key"].as_str() {
                Some("AWS_ACCESS_KEY_ID") => ACCESS_KEY.to_string(),
                Some("AWS_SECRET_ACCESS_KEY") => SECRET_KEY.to_string(),
                other => panic!("env {name}: an unexpected source {other:?}"),
            }
        };
        let value = if name == "AWS_ENDPOINT_URL" {
            endpoint.to_string()
        } else {
            value
        };
        env.push((name, value));
    }
    let args = container["args"]
        .as_sequence()
        .expect("args")
        .iter()
        .map(|a| expand_k8s(a.as_str().expect("string arg"), &env))
        .collect();
    (args, env)
}

/// The job-manager Service as kube-proxy makes it: a virtual address whose connections go to
/// one of the pods the endpoints controller lists, and it lists the Ready ones (here: those
/// whose `/readyz` on the admin port answered 200 at the last look, every 500 ms, as the
/// chart's probe period). With no Ready pod a connection is closed at once.
async fn start_service(vip: [u8; 4], port: u16, pods: Vec<[u8; 4]>) {
    let listener = tokio::net::TcpListener::bind((std::net::Ipv4Addr::from(vip), port))
        .await
        .expect("bind the Service address");
    let ready: std::sync::Arc<std::sync::Mutex<Vec<[u8; 4]>>> = Default::default();
    let endpoints = ready.clone();
    tokio::spawn(async move {
        loop {
            let pods = pods.clone();
            let now = tokio::task::spawn_blocking(move || {
                pods.into_iter()
                    .filter(|ip| probe_at(*ip, 8081, "/readyz").map(|p| p.0) == Some(200))
                    .collect::<Vec<_>>()
            })
            .await
            .unwrap_or_default();
            *endpoints.lock().unwrap_or_else(|p| p.into_inner()) = now;
            tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        }
    });
    tokio::spawn(async move {
        let mut turn = 0usize;
        loop {
            let Ok((mut inbound, _)) = listener.accept().await else {
                continue;
            };
            let pods = ready.lock().unwrap_or_else(|p| p.into_inner()).clone();
            let Some(pod) = pods.get(turn % pods.len().max(1)).copied() else {
                continue; // no endpoint: the connection is dropped
            };
            turn += 1;
            tokio::spawn(async move {
                if let Ok(mut outbound) =
                    tokio::net::TcpStream::connect((std::net::Ipv4Addr::from(pod), port)).await
                {
                    let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                }
            });
        }
    });
}

/// The cluster of `deploy/kubernetes/weir-ha.yaml` (the chart with two job-manager replicas),
/// started with exactly the container args and environment rendered there: each pod a process
/// on a loopback address of its own (127.0.0.x for its pod IP and for the `0.0.0.0` it binds),
/// the job-manager Service a proxy to the Ready job manager (`start_service`), the state on
/// S3. Task managers and the client know only the Service's address, as in the cluster.
/// `examples/keyed-count.json` runs to FINISHED while the leader is killed once, exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_rendered_kubernetes_manifests_run_a_job_across_a_leader_kill() {
    let manifests =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/kubernetes/weir-ha.yaml");
    let deployments = rendered_deployments(&manifests);
    let (jm_replicas, jm) = deployments
        .get("weir-jobmanager")
        .expect("job manager")
        .clone();
    let (tm_replicas, tm) = deployments
        .get("weir-taskmanager")
        .expect("task manager")
        .clone();
    assert_eq!(
        jm_replicas, 2,
        "the HA rendering has a leader and a standby"
    );

    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("s3");
    std::fs::create_dir_all(root.join("weir")).unwrap();
    let (endpoint, _) = start_s3(&root).await;
    let log = |name: &str| dir.path().join(format!("{name}.log"));
    let read_log = |name: &str| strip_ansi(&std::fs::read_to_string(log(name)).unwrap_or_default());

    // Pod IPs: job managers 127.0.0.12.., task managers 127.0.0.22..
    let jm_ips: Vec<[u8; 4]> = (0..jm_replicas)
        .map(|i| [127, 0, 0, 12 + i as u8])
        .collect();
    let tm_ips: Vec<[u8; 4]> = (0..tm_replicas)
        .map(|i| [127, 0, 0, 22 + i as u8])
        .collect();
    let dotted = |ip: &[u8; 4]| format!("{}.{}.{}.{}", ip[0], ip[1], ip[2], ip[3]);
    let service = "http://weir-jobmanager:6123";
    let service_ip = [127, 0, 0, 11];
    start_service(service_ip, 6123, jm_ips.clone()).await;
    let service_url = format!("http://{}:6123", dotted(&service_ip));
    let start = |name: &str, container: &serde_yaml::Value, ip: &[u8; 4]| {
        let ip = dotted(ip);
        let (args, env) = pod_command(container, &ip, &endpoint);
        let args: Vec<String> = args
            .iter()
            .map(|a| a.replace("0.0.0.0", &ip).replace(service, &service_url))
            .collect();
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        Proc::spawn_env(name, &args, &log(name), &env)
    };
    // What the rendering must hold for the substitutions above to mean anything.
    let tm_args = pod_command(&tm, "POD", "S3").0;
    assert!(tm_args.iter().any(|a| a == service), "{tm_args:?}");
    assert!(
        tm_args.iter().any(|a| a == "http://POD:6124"),
        "{tm_args:?}"
    );

    let mut jms: Vec<Option<Proc>> = jm_ips
        .iter()
        .enumerate()
        .map(|(i, ip)| Some(start(&format!("jm{i}"), &jm, ip)))
        .collect();
    let _tms: Vec<Proc> = tm_ips
        .iter()
        .enumerate()
        .map(|(i, ip)| start(&format!("tm{i}"), &tm, ip))
        .collect();

    // The kubelet's view: one job manager ready (the Service's only endpoint), every task
    // manager ready once registered.
    let ready = |ip: &[u8; 4]| probe_at(*ip, 8081, "/readyz").map(|p| p.0) == Some(200);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let leader = loop {
        let leaders: Vec<usize> = (0..jm_ips.len()).filter(|i| ready(&jm_ips[*i])).collect();
        if leaders.len() == 1 && tm_ips.iter().all(ready) {
            break leaders[0];
        }
        if std::time::Instant::now() > deadline {
            dump_logs_in(dir.path(), 40);
            panic!("no single ready job manager with ready task managers: {leaders:?}");
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    };
    let standby = probe_at(jm_ips[1 - leader], 8081, "/readyz").expect("standby answers");
    assert!(
        standby.0 == 503 && standby.1.starts_with("standby"),
        "{standby:?}"
    );

    let example = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/keyed-count.json"),
    )
    .expect("example");
    let local_path = "weir-data/output/keyed-count";
    assert!(example.contains(local_path));
    let client = weir_client::Client::connect(&service_url)
        .await
        .expect("client");
    let id = client
        .submit_json(
            &example.replace(local_path, "s3://weir/output/keyed-count"),
            None,
        )
        .await
        .expect("submit");
    checkpoints_pass(&client, &id, 2).await;
    let killed = std::time::Instant::now();
    jms[leader].take().expect("leader").kill9();
    let status = client
        .wait(&id, Some(std::time::Duration::from_secs(240)))
        .await
        .expect("the job ends under the new leader");
    if status.state != "FINISHED" {
        dump_logs_in(dir.path(), 40);
    }
    assert_eq!(status.state, "FINISHED", "{}", status.failure);
    assert!(
        status.attempt >= 2,
        "the kill restarted the job from a checkpoint"
    );
    assert!(read_log(&format!("jm{}", 1 - leader)).contains("leader for"));
    assert!(ready(&jm_ips[1 - leader]), "the new leader is ready");
    eprintln!(
        "the job finished {:?} after the leader's kill",
        killed.elapsed()
    );

    // The same example run embedded is the reference: the same rows, each once, and per key
    // the running counts 1..=n with the final sum.
    let reference_dir = dir.path().join("reference");
    std::fs::create_dir_all(&reference_dir).unwrap();
    let reference_out = reference_dir.join("out");
    let run = weir_run(
        &reference_dir,
        &example.replace(local_path, reference_out.to_str().unwrap()),
    );
    assert!(run.ok, "{}", run.text);
    let rows = |dir: &Path| -> Vec<[i64; 5]> {
        committed_lines(dir)
            .iter()
            .map(|l| {
                let v: serde_json::Value = serde_json::from_str(l).expect("JSON line");
                ["id", "key", "value", "n", "total"].map(|f| v[f].as_i64().expect(f))
            })
            .collect()
    };
    let got = rows(&root.join("weir/output/keyed-count"));
    let want = rows(&reference_out);
    let inputs = |rows: &[[i64; 5]]| {
        let mut v: Vec<[i64; 3]> = rows.iter().map(|r| [r[0], r[1], r[2]]).collect();
        v.sort_unstable();
        v
    };
    let per_key = |rows: &[[i64; 5]]| {
        let mut m: std::collections::BTreeMap<i64, (Vec<i64>, i64, i64)> = Default::default();
        for r in rows {
            let e = m.entry(r[1]).or_default();
            e.0.push(r[3]);
            e.1 += r[2];
            e.2 = e.2.max(r[4]);
        }
        for e in m.values_mut() {
            e.0.sort_unstable();
        }
        m
    };
    eprintln!(
        "rendered HA cluster: {} rows (reference {}), attempt {}",
        got.len(),
        want.len(),
        status.attempt
    );
    assert!(want.len() > 1_000_000, "the reference ran: {}", want.len());
    assert!(inputs(&got) == inputs(&want), "rows lost or duplicated");
    let (got_keys, want_keys) = (per_key(&got), per_key(&want));
    assert!(got_keys == want_keys, "running counts or sums differ");
    for (n, sum, total) in want_keys.values() {
        assert_eq!(*n, (1..=n.len() as i64).collect::<Vec<_>>());
        assert_eq!(sum, total);
    }
    drop(jms);
}
