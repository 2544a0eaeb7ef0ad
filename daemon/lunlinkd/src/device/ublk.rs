//! The libublk plumbing: creating, serving, recovering and removing a device; one control
//! thread per device and one thread per queue, each waking on an eventfd when the engine
//! completes a command on tokio's threads.

use super::*;

// ---- device lifecycle ------------------------------------------------------------------------

pub(super) struct Started {
    pub(super) bdev: String,
    pub(super) ctrl: Arc<UblkCtrl>,
    pub(super) thread: std::thread::JoinHandle<()>,
}

pub(super) type StartReply = Result<(String, Arc<UblkCtrl>), DeviceError>;

pub(super) fn ublk_error(e: &UblkError) -> String {
    match e {
        UblkError::OtherError(n) | UblkError::UringIOError(n) => io::Error::from_raw_os_error(-n).to_string(),
        UblkError::IOError(e) => e.to_string(),
        other => other.to_string(),
    }
}

/// A device to take over from a previous daemon: (id, queues, depth) as the kernel has them.
pub(super) type Recover = Option<(u32, u16, u16)>;

/// Starts a device's control thread and waits until /dev/ublkbN exists (or creation failed).
/// With `recover`, the existing device is taken over instead (START/END_USER_RECOVERY).
pub(super) async fn start_device(cfg: &DeviceConfig, lu: Arc<Lu>, ident: Ident, recover: Recover) -> Result<Started, DeviceError> {
    let (tx, rx) = tokio::sync::oneshot::channel::<StartReply>();
    let cfg = cfg.clone();
    let rt = tokio::runtime::Handle::current();
    let name = format!("ublk-{}", lu.key.chars().rev().take(8).collect::<String>());
    let thread = std::thread::Builder::new()
        .name(name)
        .spawn(move || device_thread(&cfg, lu, &ident, recover, &rt, tx))
        .map_err(|e| DeviceError::Create(format!("cannot start a thread: {e}")))?;
    match rx.await {
        Ok(Ok((bdev, ctrl))) => Ok(Started { bdev, ctrl, thread }),
        Ok(Err(e)) => {
            let _ = tokio::task::spawn_blocking(move || thread.join()).await;
            Err(e)
        }
        Err(_) => Err(DeviceError::Create("the device thread ended before the device was ready".into())),
    }
}

/// Creates the device and serves it until it is stopped; then deletes it (when the last
/// handle on the control drops).
pub(super) fn device_thread(
    cfg: &DeviceConfig,
    lu: Arc<Lu>,
    ident: &Ident,
    recover: Recover,
    rt: &tokio::runtime::Handle,
    reply: tokio::sync::oneshot::Sender<StartReply>,
) {
    let reply = Arc::new(Mutex::new(Some(reply)));
    let send = move |r: StartReply| {
        if let Some(tx) = reply.lock().unwrap_or_else(|e| e.into_inner()).take() {
            let _ = tx.send(r);
        }
    };
    let (nr_queues, depth) = match recover {
        Some((_, q, d)) => (q.max(1), d.max(1)),
        None => (cfg.nr_queues.max(1), cfg.queue_depth.max(1)),
    };
    // One eventfd per queue, made here so a queue thread cannot fail before it registers.
    let mut wakes = Vec::new();
    for _ in 0..nr_queues {
        match QueueWake::new() {
            Ok(w) => wakes.push(Arc::new(w)),
            Err(e) => return send(Err(DeviceError::Create(format!("cannot create an eventfd: {e}")))),
        }
    }
    let wakes = Arc::new(wakes);
    let mut ctrl_flags = u64::from(sys::UBLK_F_CMD_IOCTL_ENCODE);
    if cfg.recoverable {
        ctrl_flags |= u64::from(sys::UBLK_F_USER_RECOVERY | sys::UBLK_F_USER_RECOVERY_REISSUE);
    }
    let builder = UblkCtrlBuilder::default()
        .name(TARGET_TYPE)
        .nr_queues(nr_queues)
        .depth(depth)
        .io_buf_bytes(lu.geo.io_buf_bytes);
    let built = match recover {
        // The kernel's view of the device (flags, queues) is read back by libublk; the
        // device must be in recovery (its server gone) before queues can attach.
        Some((id, _, _)) => builder
            .id(i32::try_from(id).unwrap_or(i32::MAX))
            .dev_flags(UblkFlags::UBLK_DEV_F_RECOVER_DEV)
            .build()
            .and_then(|c| c.start_user_recover().map(|_| c))
            .map_err(|e| DeviceError::Create(format!("taking over ublk device {id} failed: {}", ublk_error(&e)))),
        None => builder
            .id(-1)
            .ctrl_flags(ctrl_flags)
            // Asynchronous delete: a synchronous DEL_DEV waits until nobody holds the disk
            // any more, which a filesystem still mounted after a forced logout never allows.
            .dev_flags(UblkFlags::UBLK_DEV_F_ADD_DEV | UblkFlags::UBLK_DEV_F_DEL_DEV_ASYNC)
            .build()
            .map_err(|e| DeviceError::Create(format!("adding a ublk device failed: {}", ublk_error(&e)))),
    };
    let ctrl = match built {
        Ok(c) => Arc::new(c),
        Err(e) => return send(Err(e)),
    };
    let dev_id = ctrl.dev_info().dev_id;
    let env_file = udev_file(&cfg.runtime_dir, dev_id);
    let geo = lu.geo.clone();
    let identity = serde_json::json!({
        "wwid": ident.wwid, "target": ident.target, "portal": ident.portal, "lun": ident.lun,
        "geometry": geo,
    });
    let udev_env = ident.udev_env();
    let env_path = env_file.clone();
    let tgt_init = move |dev: &mut UblkDev| -> Result<(), UblkError> {
        dev.tgt.dev_size = geo.blocks * u64::from(geo.block_size);
        dev.tgt.params = geo.params();
        // Room for the eventfd poll next to one command per tag.
        dev.tgt.sq_depth = depth.saturating_add(1);
        dev.tgt.cq_depth = depth.saturating_add(1);
        dev.set_target_json(identity);
        // Before START_DEV, so udev finds it with the disk's "add" event.
        if let Err(e) = write_udev_file(&env_path, &udev_env) {
            tracing::warn!(path = %env_path.display(), "cannot write the udev properties: {e}");
        }
        Ok(())
    };
    let q_lu = lu.clone();
    let q_rt = rt.clone();
    let queue_fn = move |qid: u16, dev: &UblkDev| {
        if let Some(w) = wakes.get(usize::from(qid)) {
            queue_thread(qid, dev, &q_lu, w, &q_rt);
        }
    };
    let ready_ctrl = ctrl.clone();
    let ready_send = send.clone();
    let ready = move |c: &UblkCtrl| ready_send(Ok((c.get_bdev_path(), ready_ctrl)));
    let r = ctrl.run_target(tgt_init, queue_fn, ready);
    if let Err(e) = &r {
        tracing::warn!(lu = %lu.key, "ublk device {dev_id} ended: {}", ublk_error(e));
        send(Err(DeviceError::Create(format!("starting ublk device {dev_id} failed: {}", ublk_error(e)))));
    }
    let _ = std::fs::remove_file(&env_file);
}

/// Stops a device, waits for its threads and deletes it. Blocking.
pub(super) fn remove_device(mut d: Device) {
    // Control commands go through a per-thread ring that this thread may not have yet.
    let ring = libublk::ublk_init_ctrl_task_ring(|ring| {
        if ring.is_none() {
            *ring = Some(io_uring::IoUring::<io_uring::squeue::Entry128>::builder().build(16)?);
        }
        Ok(())
    });
    if let Err(e) = ring {
        tracing::error!(device = %d.bdev, "cannot set up the ublk control ring: {}", ublk_error(&e));
        // Dropping the control without a ring would panic in libublk; the device stays until
        // the daemon exits and the kernel removes it.
        std::mem::forget(d);
        return;
    }
    if let Err(e) = d.ctrl.kill_dev() {
        tracing::warn!(device = %d.bdev, "stopping the device failed: {}", ublk_error(&e));
    }
    if let Some(t) = d.thread.take() {
        let _ = t.join();
    }
    // A control that took the device over does not delete it when dropped.
    if d.recovered {
        if let Err(e) = d.ctrl.del_dev_async() {
            tracing::warn!(device = %d.bdev, "deleting the device failed: {}", ublk_error(&e));
        }
    }
    // The last handle: dropping it deletes the device (DEL_DEV_ASYNC) on this thread's ring.
    drop(d);
}

// ---- queues and IO -----------------------------------------------------------------------------

/// Wakes a queue thread that sleeps in io_uring: an eventfd with an io_uring poll pending.
pub(super) struct QueueWake {
    pub(super) fd: OwnedFd,
    /// Set by the first wake since the queue thread last drained the eventfd (saves writes).
    pub(super) pending: AtomicBool,
}

impl QueueWake {
    pub(super) fn new() -> io::Result<QueueWake> {
        // SAFETY: eventfd has no memory arguments; a non-negative result is a new fd we own.
        let fd = unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: fd is valid and owned by nobody else.
        Ok(QueueWake { fd: unsafe { OwnedFd::from_raw_fd(fd) }, pending: AtomicBool::new(false) })
    }

    pub(super) fn notify(&self) {
        if !self.pending.swap(true, Ordering::SeqCst) {
            let one: u64 = 1;
            // SAFETY: writes 8 bytes from a live u64 to our eventfd.
            unsafe { libc::write(self.fd.as_raw_fd(), std::ptr::addr_of!(one).cast(), 8) };
        }
    }

    /// Called on the queue thread after the poll fired: reset the counter, then accept new
    /// notifications. A wake between the two is not lost: its task is already scheduled and
    /// runs in this same round of the executor.
    pub(super) fn drain(&self) {
        let mut v: u64 = 0;
        // SAFETY: reads at most 8 bytes into a live u64; the fd is non-blocking.
        unsafe { libc::read(self.fd.as_raw_fd(), std::ptr::addr_of_mut!(v).cast(), 8) };
        self.pending.store(false, Ordering::SeqCst);
    }
}

/// Keeps a poll on the queue's eventfd pending in the queue's io_uring.
pub(super) async fn pump(w: Arc<QueueWake>) {
    loop {
        let sqe = io_uring::opcode::PollAdd::new(io_uring::types::Fd(w.fd.as_raw_fd()), u32::try_from(libc::POLLIN).unwrap_or(1))
            .build();
        match libublk::uring_async::ublk_submit_sqe_async(sqe, UblkUringData::Target as u64).await {
            Ok(r) if r >= 0 => w.drain(),
            _ => return,
        }
    }
}

/// The waker engine futures of one tag see: wakes the tag's task and the queue thread.
pub(super) struct TagWaker {
    pub(super) task: Mutex<Option<Waker>>,
    pub(super) queue: Arc<QueueWake>,
}

impl TagWaker {
    pub(super) fn register(&self, w: &Waker) {
        let mut t = self.task.lock().unwrap_or_else(|e| e.into_inner());
        if !t.as_ref().is_some_and(|old| old.will_wake(w)) {
            *t = Some(w.clone());
        }
    }
}

impl Wake for TagWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }
    fn wake_by_ref(self: &Arc<Self>) {
        let task = self.task.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(t) = task {
            t.wake();
        }
        self.queue.notify();
    }
}

/// Polls `fut` (an engine future, completed from other threads) under the tag's waker.
pub(super) async fn cross<F: Future>(tw: &TagWaker, waker: &Waker, fut: F) -> F::Output {
    let mut fut = pin!(fut);
    poll_fn(|cx| {
        tw.register(cx.waker());
        fut.as_mut().poll(&mut Context::from_waker(waker))
    })
    .await
}

pub(super) struct QueueCtx {
    pub(super) lu: Arc<Lu>,
    pub(super) wake: Arc<QueueWake>,
    /// One block of zeroes: the data of WRITE SAME.
    pub(super) zero: Box<[u8]>,
}

pub(super) fn queue_thread(qid: u16, dev: &UblkDev, lu: &Arc<Lu>, wake: &Arc<QueueWake>, rt: &tokio::runtime::Handle) {
    let _rt = rt.enter();
    let q = match UblkQueue::new(qid, dev) {
        Ok(q) => Rc::new(q),
        Err(e) => {
            tracing::error!(lu = %lu.key, queue = qid, "cannot set up the ublk queue: {}", ublk_error(&e));
            return;
        }
    };
    let ctx = Rc::new(QueueCtx {
        lu: lu.clone(),
        wake: wake.clone(),
        zero: vec![0u8; lu.geo.block_size as usize].into_boxed_slice(),
    });
    let exe = Rc::new(smol::LocalExecutor::new());
    let mut tasks = Vec::new();
    for tag in q.tags() {
        let q = q.clone();
        let ctx = ctx.clone();
        tasks.push(exe.spawn(async move {
            match io_task(&q, tag, &ctx).await {
                Ok(()) | Err(UblkError::QueueIsDown) => {}
                Err(e) => tracing::error!(lu = %ctx.lu.key, tag, "ublk IO task failed: {}", ublk_error(&e)),
            }
        }));
    }
    let pump_task = exe.spawn(pump(wake.clone()));
    let exe2 = exe.clone();
    let q2 = q.clone();
    smol::block_on(exe.run(async move {
        let run_ops = || while exe2.try_tick() {};
        let done = || tasks.iter().all(|t| t.is_finished());
        if let Err(e) = libublk::wait_and_handle_io_events(&q2, Some(20), run_ops, done).await {
            tracing::warn!(queue = qid, "ublk queue ended: {}", ublk_error(&e));
        }
    }));
    drop(pump_task);
}

pub(super) async fn io_task(q: &UblkQueue<'_>, tag: u16, ctx: &QueueCtx) -> Result<(), UblkError> {
    let mut buf = IoBuf::<u8>::new(ctx.lu.geo.io_buf_bytes as usize);
    let tw = Arc::new(TagWaker { task: Mutex::new(None), queue: ctx.wake.clone() });
    let waker = Waker::from(tw.clone());
    q.submit_io_prep_cmd(tag, BufDesc::Slice(buf.as_slice()), 0, Some(&buf)).await?;
    loop {
        let iod = *q.get_iod(tag);
        let res = serve(ctx, &iod, buf.as_mut_slice(), &tw, &waker).await;
        q.submit_io_commit_cmd(tag, BufDesc::Slice(buf.as_slice()), res).await?;
    }
}
