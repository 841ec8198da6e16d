//! Hub downloads (`load_model("org/name")`, src/model/loading.rs) against a
//! Hub-shaped HTTP server on 127.0.0.1 serving the tiny fixture models: a
//! download into a fresh cache, a reload with the server gone, a missing
//! repository (404) and a gated one (401) each reported in one line, a download
//! cut off midway (no cache entry left; a retry succeeds), and
//! `HF_HUB_OFFLINE=1`; the same for a repository that holds one GGUF file.
//!
//! The server is bounded: it answers until the test drops it or for at most
//! two minutes, then stops by itself. Each check runs the promot binary with
//! its own `HF_ENDPOINT` and a fresh `HF_HOME`, since environment variables are
//! the process's. No network is needed.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// The commit every served repository is at (hf-hub wants an `X-Repo-Commit`).
const COMMIT: &str = "0123456789abcdef0123456789abcdef01234567";
/// How long a server answers at most.
const LIFETIME: Duration = Duration::from_secs(120);

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(name)
}

/// A repository: file name -> contents.
type Repo = HashMap<String, Vec<u8>>;

fn repo_of(dir: &Path, files: &[&str]) -> Repo {
    files
        .iter()
        .map(|f| (f.to_string(), std::fs::read(dir.join(f)).unwrap()))
        .collect()
}

/// What the server holds: the T5 fixture as `promot/tiny-mt5`, the GGUF
/// fixture as `promot/tiny-gguf`, and `promot/gated`, which refuses everyone.
fn repos() -> HashMap<String, Repo> {
    let mut out = HashMap::new();
    let t5 = [
        "config.json",
        "model.safetensors",
        "spiece.model",
        "tokenizer_config.json",
    ];
    out.insert("promot/tiny-mt5".to_string(), repo_of(&fixture("tiny-mt5"), &t5));
    out.insert(
        "promot/tiny-gguf".to_string(),
        repo_of(&fixture("tiny-llama-gguf"), &["model.gguf"]),
    );
    out
}

/// A Hub-shaped server: `GET /{repo}/resolve/{rev}/{file}` (with `Range`, as
/// hf-hub asks: 206, `Content-Range`, `ETag`, `X-Repo-Commit`) and
/// `GET /api/models/{repo}/revision/{rev}` (the file list).
struct Hub {
    endpoint: String,
    stop: Arc<AtomicBool>,
    /// The request lines received, in order.
    requests: Arc<Mutex<Vec<String>>>,
    /// While set, the next download of this file stops halfway.
    cut_next: Arc<Mutex<Option<String>>>,
    thread: Option<JoinHandle<()>>,
}

impl Hub {
    fn start() -> Hub {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        let stop = Arc::new(AtomicBool::new(false));
        let requests = Arc::new(Mutex::new(Vec::new()));
        let cut_next = Arc::new(Mutex::new(None));
        let (s, r, c) = (stop.clone(), requests.clone(), cut_next.clone());
        let repos = repos();
        let thread = std::thread::spawn(move || {
            let started = Instant::now();
            while !s.load(Ordering::SeqCst) && started.elapsed() < LIFETIME {
                match listener.accept() {
                    Ok((stream, _)) => {
                        // A broken connection is the client's business; the server goes on.
                        let _ = serve(stream, &repos, &r, &c);
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                        std::thread::sleep(Duration::from_millis(5))
                    }
                    Err(_) => break,
                }
            }
        });
        Hub {
            endpoint,
            stop,
            requests,
            cut_next,
            thread: Some(thread),
        }
    }

    fn requests(&self) -> Vec<String> {
        self.requests.lock().unwrap().clone()
    }
}

impl Drop for Hub {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Answer one request (and close the connection).
fn serve(
    stream: TcpStream,
    repos: &HashMap<String, Repo>,
    log: &Mutex<Vec<String>>,
    cut_next: &Mutex<Option<String>>,
) -> std::io::Result<()> {
    stream.set_nonblocking(false)?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut request_line = String::new();
    reader.read_line(&mut request_line)?;
    let mut range = None;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 || line.trim().is_empty() {
            break;
        }
        if let Some((k, v)) = line.split_once(':') {
            if k.trim().eq_ignore_ascii_case("range") {
                range = Some(v.trim().to_string());
            }
        }
    }
    log.lock().unwrap().push(request_line.trim().to_string());
    let path = request_line.split_whitespace().nth(1).unwrap_or("").to_string();
    let mut out = stream;
    let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    // The file list: /api/models/{org}/{name}/revision/{rev}
    if parts.len() == 6 && parts[..2] == ["api", "models"] && parts[4] == "revision" {
        let id = format!("{}/{}", parts[2], parts[3]);
        if id == "promot/gated" {
            return reply(&mut out, "401 Unauthorized", &[("X-Error-Code", "GatedRepo")], b"gated");
        }
        let Some(files) = repos.get(&id) else {
            return reply(
                &mut out,
                "404 Not Found",
                &[("X-Error-Code", "RepoNotFound")],
                b"not found",
            );
        };
        let mut names: Vec<&String> = files.keys().collect();
        names.sort();
        let siblings: Vec<serde_json::Value> = names.iter().map(|n| serde_json::json!({ "rfilename": n })).collect();
        let body = serde_json::json!({ "sha": COMMIT, "siblings": siblings }).to_string();
        return reply(
            &mut out,
            "200 OK",
            &[("Content-Type", "application/json")],
            body.as_bytes(),
        );
    }
    // A file: /{org}/{name}/resolve/{rev}/{file}
    if parts.len() != 5 || parts[2] != "resolve" {
        return reply(&mut out, "404 Not Found", &[], b"no such route");
    }
    let id = format!("{}/{}", parts[0], parts[1]);
    if id == "promot/gated" {
        return reply(&mut out, "401 Unauthorized", &[("X-Error-Code", "GatedRepo")], b"gated");
    }
    let Some(files) = repos.get(&id) else {
        return reply(
            &mut out,
            "404 Not Found",
            &[("X-Error-Code", "RepoNotFound")],
            b"not found",
        );
    };
    let Some(data) = files.get(parts[4]) else {
        return reply(
            &mut out,
            "404 Not Found",
            &[("X-Error-Code", "EntryNotFound")],
            b"not found",
        );
    };
    let etag = format!("\"{}-{}\"", parts[4].replace('.', "-"), data.len());
    let total = data.len();
    // bytes=a-b or bytes=a-
    let (start, end) = match range.as_deref().and_then(|r| r.strip_prefix("bytes=")) {
        Some(r) => {
            let (a, b) = r.split_once('-').unwrap_or((r, ""));
            let a: usize = a.parse().unwrap_or(0);
            let b: usize = b.parse().map_or(total.saturating_sub(1), |b: usize| b.min(total - 1));
            (a, b)
        }
        None => (0, total - 1),
    };
    let body = &data[start..=end];
    let content_range = format!("bytes {start}-{end}/{total}");
    let status = if range.is_some() {
        "206 Partial Content"
    } else {
        "200 OK"
    };
    let headers = [
        ("ETag", etag.as_str()),
        ("X-Repo-Commit", COMMIT),
        ("Content-Range", content_range.as_str()),
    ];
    let cut = {
        let mut next = cut_next.lock().unwrap();
        let hit = next.as_deref() == Some(parts[4]) && body.len() > 1;
        if hit {
            *next = None;
        }
        hit
    };
    if cut {
        // Promise the whole body, send half, hang up.
        write_head(&mut out, status, &headers, body.len())?;
        out.write_all(&body[..body.len() / 2])?;
        out.flush()?;
        return out.shutdown(std::net::Shutdown::Both);
    }
    reply(&mut out, status, &headers, body)
}

fn write_head(out: &mut TcpStream, status: &str, headers: &[(&str, &str)], len: usize) -> std::io::Result<()> {
    let mut head = format!("HTTP/1.1 {status}\r\nContent-Length: {len}\r\nConnection: close\r\n");
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    out.write_all(head.as_bytes())
}

fn reply(out: &mut TcpStream, status: &str, headers: &[(&str, &str)], body: &[u8]) -> std::io::Result<()> {
    write_head(out, status, headers, body.len())?;
    out.write_all(body)?;
    out.flush()
}

/// A fresh, empty HF_HOME for one check.
fn fresh_home(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("promot-hub-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// `promot -e CODE` with the Hub at `endpoint`, the cache in `home`, and no
/// token or offline setting from the caller's environment.
fn promot(code: &str, endpoint: &str, home: &Path, offline: bool) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_promot"));
    cmd.args(["-e", code])
        .env("HF_ENDPOINT", endpoint)
        .env("HF_HOME", home)
        .env_remove("HF_TOKEN")
        .env_remove("HF_HUB_OFFLINE")
        .env_remove("HF_HUB_CACHE")
        .env_remove("PROMOT_MODELS");
    if offline {
        cmd.env("HF_HUB_OFFLINE", "1");
    }
    cmd.output().expect("run promot")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// The output of a model that loaded: its generation for a fixed input.
fn generated(o: &Output) -> String {
    assert!(o.status.success(), "promot failed:\n{}", text(&o.stderr));
    text(&o.stdout)
}

/// The error lines of a failed run (warnings and progress left out).
fn error_lines(o: &Output) -> Vec<String> {
    assert!(!o.status.success(), "promot succeeded:\n{}", text(&o.stdout));
    text(&o.stderr)
        .lines()
        .filter(|l| l.starts_with("error"))
        .map(str::to_string)
        .collect()
}

fn generate_code(spec: &str) -> String {
    format!("load_model(\"{spec}\").generate(\"Hello world\", #{{ max_new_tokens: 6 }})")
}

/// Files whose name is `name` anywhere under `dir`.
fn find(dir: &Path, name: &str) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() && !p.is_symlink() {
                out.extend(find(&p, name));
            } else if p.file_name().is_some_and(|n| n == name) {
                out.push(p);
            }
        }
    }
    out
}

/// Download, reload offline and with the server gone, a cut-off download,
/// for one repository; `local` is the same model from the fixtures.
fn download_reload_and_cut(id: &str, local: &Path, weights: &str) {
    let tag = id.replace('/', "-");
    let local_weights = if local.is_dir() {
        local.join(weights)
    } else {
        local.to_path_buf()
    };
    let no_hub = "http://127.0.0.1:9";
    let want = generated(&promot(
        &generate_code(local.to_str().unwrap()),
        no_hub,
        &fresh_home(&format!("{tag}-local")),
        false,
    ));

    // A download into a fresh cache.
    let hub = Hub::start();
    let home = fresh_home(&tag);
    assert_eq!(
        generated(&promot(&generate_code(id), &hub.endpoint, &home, false)),
        want
    );
    assert!(
        hub.requests()
            .iter()
            .any(|r| r.contains(&format!("/{id}/resolve/main/{weights}"))),
        "{:?}",
        hub.requests()
    );
    let cached = find(&home.join("hub"), weights);
    assert_eq!(cached.len(), 1, "{cached:?}");
    assert_eq!(
        std::fs::read(&cached[0]).unwrap(),
        std::fs::read(&local_weights).unwrap()
    );

    // Offline, with the server still there: served from the cache, no request made.
    let before = hub.requests().len();
    assert_eq!(generated(&promot(&generate_code(id), &hub.endpoint, &home, true)), want);
    assert_eq!(hub.requests().len(), before, "offline mode asked the server");
    let endpoint = hub.endpoint.clone();
    drop(hub);

    // The server gone: the cache still serves it.
    assert_eq!(generated(&promot(&generate_code(id), &endpoint, &home, false)), want);

    // A download cut off midway leaves no cache entry; a retry completes it.
    let hub = Hub::start();
    let home = fresh_home(&format!("{tag}-cut"));
    *hub.cut_next.lock().unwrap() = Some(weights.to_string());
    let errors = error_lines(&promot(&generate_code(id), &hub.endpoint, &home, false));
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(errors[0].contains(id), "{errors:?}");
    assert!(hub.cut_next.lock().unwrap().is_none(), "the download was not cut off");
    assert!(
        find(&home.join("hub"), weights).is_empty(),
        "a cut-off download left {weights} in the cache"
    );
    assert_eq!(
        generated(&promot(&generate_code(id), &hub.endpoint, &home, false)),
        want
    );
    let cached = find(&home.join("hub"), weights);
    assert_eq!(cached.len(), 1, "{cached:?}");
    assert_eq!(
        std::fs::read(&cached[0]).unwrap(),
        std::fs::read(&local_weights).unwrap()
    );
}

#[test]
fn a_safetensors_repository_downloads_reloads_and_survives_a_cut() {
    download_reload_and_cut("promot/tiny-mt5", &fixture("tiny-mt5"), "model.safetensors");
}

#[test]
fn a_gguf_repository_downloads_reloads_and_survives_a_cut() {
    download_reload_and_cut("promot/tiny-gguf", &fixture("tiny-llama-gguf/model.gguf"), "model.gguf");
}

#[test]
fn missing_gated_and_offline_each_give_one_clear_line() {
    let hub = Hub::start();
    let home = fresh_home("errors");
    let code = |id: &str| format!("load_model(\"{id}\")");

    let missing = error_lines(&promot(&code("promot/no-such-model"), &hub.endpoint, &home, false));
    assert_eq!(missing.len(), 1, "{missing:?}");
    assert!(
        missing[0].contains("promot/no-such-model")
            && missing[0].contains("404")
            && missing[0].contains("no repository"),
        "{missing:?}"
    );

    let gated = error_lines(&promot(&code("promot/gated"), &hub.endpoint, &home, false));
    assert_eq!(gated.len(), 1, "{gated:?}");
    assert!(
        gated[0].contains("promot/gated") && gated[0].contains("401") && gated[0].contains("HF_TOKEN"),
        "{gated:?}"
    );

    // Offline and not cached: one line saying so, and no request reaches the server.
    let before = hub.requests().len();
    let offline = error_lines(&promot(&code("promot/tiny-mt5"), &hub.endpoint, &home, true));
    assert_eq!(offline.len(), 1, "{offline:?}");
    assert!(offline[0].contains("HF_HUB_OFFLINE"), "{offline:?}");
    assert_eq!(hub.requests().len(), before, "offline mode asked the server");

    // No server at all: one line naming the endpoint.
    let endpoint = hub.endpoint.clone();
    drop(hub);
    let unreachable = error_lines(&promot(&code("promot/tiny-mt5"), &endpoint, &home, false));
    assert_eq!(unreachable.len(), 1, "{unreachable:?}");
    assert!(unreachable[0].contains(&endpoint), "{unreachable:?}");
    // Nothing was cached by the failures.
    assert!(find(&home.join("hub"), "config.json").is_empty());
}

#[test]
fn the_server_stops_by_itself_when_dropped() {
    let hub = Hub::start();
    let endpoint = hub.endpoint.clone();
    drop(hub);
    let addr = endpoint.trim_start_matches("http://");
    let refused = TcpStream::connect(addr).map(|mut s| {
        let _ = s.write_all(b"GET / HTTP/1.1\r\n\r\n");
        let mut buf = Vec::new();
        s.set_read_timeout(Some(Duration::from_secs(1))).unwrap();
        s.read_to_end(&mut buf).map(|_| buf.is_empty()).unwrap_or(true)
    });
    assert!(refused.unwrap_or(true), "the server still answers after being dropped");
}
