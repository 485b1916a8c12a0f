// TEMPORARY: dedicated threads vs spawn_blocking for one point read.
use std::sync::{mpsc, Arc, Mutex};
use std::time::Instant;
use rusqlite::{params, Connection, OptionalExtension};
use tokio::sync::oneshot;

fn get(conn: &Connection, k: &str) -> Option<serde_json::Value> {
    let mut st = conn.prepare_cached("SELECT doc, seq FROM records WHERE collection = 'c' AND key = ?1").unwrap();
    st.query_row(params![k], |r| { let s = r.get_ref(0)?.as_str()?; Ok(serde_json::from_str::<serde_json::Value>(s).unwrap()) }).optional().unwrap()
}

type Job = Box<dyn FnOnce(&Connection) + Send>;

fn stats(name: &str, mut v: Vec<u128>) {
    v.sort();
    let n = v.len();
    println!("{name:>28}: p50 {:>6.1} us  p90 {:>6.1} us  p99 {:>6.1} us  mean {:>6.1} us", v[n/2] as f64/1000.0, v[n*9/10] as f64/1000.0, v[n*99/100] as f64/1000.0, v.iter().sum::<u128>() as f64/n as f64/1000.0);
}

fn main() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.db");
    let conn = Connection::open(&path).unwrap();
    conn.execute_batch("PRAGMA journal_mode=WAL; CREATE TABLE records(seq INTEGER PRIMARY KEY, collection TEXT, key TEXT, doc TEXT); CREATE UNIQUE INDEX k ON records(collection,key);").unwrap();
    let doc = serde_json::json!({"agentRuntimeName":"x".repeat(40),"status":"READY","description":"d".repeat(300),"roleArn":"arn:aws:iam::123456789012:role/x","environmentVariables":{"A":"1","B":"2"},"networkConfiguration":{"networkMode":"PUBLIC"}}).to_string();
    conn.execute_batch("BEGIN").unwrap();
    for i in 0..10000 { conn.execute("INSERT INTO records VALUES (?1,'c',?2,?3)", params![i, format!("k{i}"), doc]).unwrap(); }
    conn.execute_batch("COMMIT").unwrap();
    let n = 20000;
    let rt_kind = std::env::args().nth(1).unwrap_or("multi".into());
    let rt = if rt_kind == "multi" { tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap() } else { tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap() };
    println!("runtime: {rt_kind}");
    rt.block_on(async {
        // A: dedicated reader threads
        let (tx, rx) = mpsc::channel::<Job>();
        let rx = Arc::new(Mutex::new(rx));
        let mut hs = vec![];
        for _ in 0..4 { let rx = rx.clone(); let c = Connection::open(&path).unwrap(); hs.push(std::thread::spawn(move || loop { let j = rx.lock().unwrap().recv(); match j { Ok(j) => j(&c), Err(_) => break } })); }
        // B: spawn_blocking pool
        let pool: Arc<Mutex<Vec<Connection>>> = Arc::new(Mutex::new((0..4).map(|_| Connection::open(&path).unwrap()).collect()));
        // D: condvar queue pool
        let q: Arc<(Mutex<(std::collections::VecDeque<Job>, bool)>, std::sync::Condvar)> = Arc::new((Mutex::new((Default::default(), false)), std::sync::Condvar::new()));
        for _ in 0..4 { let q = q.clone(); let c = Connection::open(&path).unwrap(); hs.push(std::thread::spawn(move || loop {
            let job = { let mut g = q.0.lock().unwrap(); loop { if let Some(j) = g.0.pop_front() { break Some(j) } if g.1 { break None } g = q.1.wait(g).unwrap(); } };
            match job { Some(j) => j(&c), None => break } })); }
        // E: single thread, own channel
        let (etx, erx) = mpsc::channel::<Job>();
        { let c = Connection::open(&path).unwrap(); hs.push(std::thread::spawn(move || { while let Ok(j) = erx.recv() { j(&c) } })); }
        // C: inline
        let inline = Mutex::new(Connection::open(&path).unwrap());
        for round in 0..2 {
            let mut a = vec![]; let mut b = vec![]; let mut c = vec![]; let mut d = vec![]; let mut e = vec![];
            for i in 0..n {
                let k = format!("k{}", (i * 7919) % 10000);
                let t = Instant::now();
                let (otx, orx) = oneshot::channel();
                let kk = k.clone();
                tx.send(Box::new(move |c: &Connection| { let _ = otx.send(get(c, &kk)); })).unwrap();
                assert!(orx.await.unwrap().is_some());
                a.push(t.elapsed().as_nanos());

                let t = Instant::now();
                let p = pool.clone(); let kk = k.clone();
                let r = tokio::task::spawn_blocking(move || { let c = p.lock().unwrap().pop().unwrap(); let r = get(&c, &kk); p.lock().unwrap().push(c); r }).await.unwrap();
                assert!(r.is_some());
                b.push(t.elapsed().as_nanos());

                let t = Instant::now();
                let (otx, orx) = oneshot::channel();
                let kk = k.clone();
                { q.0.lock().unwrap().0.push_back(Box::new(move |c: &Connection| { let _ = otx.send(get(c, &kk)); })); q.1.notify_one(); }
                assert!(orx.await.unwrap().is_some());
                d.push(t.elapsed().as_nanos());

                let t = Instant::now();
                let (otx, orx) = oneshot::channel();
                let kk = k.clone();
                etx.send(Box::new(move |c: &Connection| { let _ = otx.send(get(c, &kk)); })).unwrap();
                assert!(orx.await.unwrap().is_some());
                e.push(t.elapsed().as_nanos());

                let t = Instant::now();
                assert!(get(&inline.lock().unwrap(), &k).is_some());
                c.push(t.elapsed().as_nanos());
            }
            if round == 1 { stats("dedicated threads", a); stats("spawn_blocking", b); stats("inline (reference only)", c); stats("condvar pool threads", d); stats("one thread own channel", e); }
        }
        drop(tx); drop(etx); q.0.lock().unwrap().1 = true; q.1.notify_all(); for h in hs { h.join().unwrap(); }
    });
}
