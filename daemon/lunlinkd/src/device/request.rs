//! One ublk request as commands to the logical unit: ranges checked against the geometry, large
//! requests split at the LU's transfer limit, each command run over the LU's paths by the
//! multipath layer, the outcome turned into bytes done or -errno.

use super::*;

/// A request's range in blocks, checked against the LU.
pub(super) fn blocks_of(geo: &Geometry, iod: &sys::ublksrv_io_desc) -> Result<(u64, u64), i32> {
    let start = iod.start_sector.checked_mul(512).ok_or(-libc::EINVAL)?;
    let bytes = u64::from(iod.nr_sectors) * 512;
    let bs = u64::from(geo.block_size);
    if start % bs != 0 || bytes % bs != 0 {
        return Err(-libc::EINVAL);
    }
    let (lba, n) = (start / bs, bytes / bs);
    if lba.checked_add(n).is_none_or(|end| end > geo.blocks) {
        return Err(-libc::EINVAL);
    }
    Ok((lba, n))
}

/// A request from the kernel, checked against the LU.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Request {
    Read { lba: u64, len: usize },
    Write { lba: u64, len: usize, fua: bool },
    Flush,
    Discard { lba: u64, blocks: u32 },
    WriteZeroes { lba: u64, blocks: u32, unmap: bool },
}

impl Request {
    pub(super) fn parse(geo: &Geometry, iod: &sys::ublksrv_io_desc, buf_len: usize) -> Result<Request, i32> {
        let op = iod.op_flags & 0xff;
        let bytes = |n: u64| -> Result<usize, i32> {
            let len = usize::try_from(n * u64::from(geo.block_size)).map_err(|_| -libc::EINVAL)?;
            if len > buf_len {
                return Err(-libc::EINVAL);
            }
            Ok(len)
        };
        let blocks32 = |n: u64| u32::try_from(n).map_err(|_| -libc::EINVAL);
        Ok(match op {
            sys::UBLK_IO_OP_READ => {
                let (lba, n) = blocks_of(geo, iod)?;
                Request::Read { lba, len: bytes(n)? }
            }
            sys::UBLK_IO_OP_WRITE => {
                let (lba, n) = blocks_of(geo, iod)?;
                let fua = geo.fua && iod.op_flags & sys::UBLK_IO_F_FUA != 0;
                Request::Write { lba, len: bytes(n)?, fua }
            }
            // start_sector is u64::MAX here: nothing to check.
            sys::UBLK_IO_OP_FLUSH => Request::Flush,
            sys::UBLK_IO_OP_DISCARD if geo.discard != Discard::None => {
                let (lba, n) = blocks_of(geo, iod)?;
                Request::Discard { lba, blocks: blocks32(n)? }
            }
            sys::UBLK_IO_OP_WRITE_ZEROES if geo.write_zeroes_blocks > 0 => {
                let (lba, n) = blocks_of(geo, iod)?;
                let unmap = geo.write_zeroes_unmap && iod.op_flags & sys::UBLK_IO_F_NOUNMAP == 0;
                Request::WriteZeroes { lba, blocks: blocks32(n)?, unmap }
            }
            _ => return Err(-libc::EOPNOTSUPP),
        })
    }
}

/// Serves one request; returns bytes moved or -errno. The LU's multipath layer picks the
/// path and decides after a failure: a path error moves the request to another path, a target
/// error is the LU's answer. Everything is polled under the tag's waker (`cross`): engine
/// completions and the layer's timers wake the queue thread.
pub(super) async fn serve(ctx: &QueueCtx, iod: &sys::ublksrv_io_desc, buf: &mut [u8], tw: &TagWaker, waker: &Waker) -> i32 {
    let req = match Request::parse(&ctx.lu.geo, iod, buf.len()) {
        Ok(r) => r,
        Err(e) => return e,
    };
    let mp = &ctx.lu.mp;
    let result = cross(tw, waker, async {
        let mut a = mp.attempt();
        loop {
            let path = mp.next_path(&mut a).await?;
            match mp.run_on(&path, &mut a, run(ctx, &path, req, &mut *buf)).await {
                Tried::Done(r) => return r,
                Tried::Again => continue,
            }
        }
    })
    .await;
    match result {
        Ok(n) => n,
        Err(e) => {
            let errno = e.errno();
            let count = ctx.lu.errors.fetch_add(1, Ordering::Relaxed);
            if count < 20 || count.is_multiple_of(1000) {
                tracing::warn!(lu = %ctx.lu.key, request = ?req, errno, errors = count + 1, "IO failed: {e}");
            }
            -errno
        }
    }
}

/// Runs a request on one path; returns the bytes moved.
pub(super) async fn run(ctx: &QueueCtx, path: &IoPath, req: Request, buf: &mut [u8]) -> Result<i32, ScsiOpError> {
    let bs = ctx.lu.geo.block_size;
    let (lba, len, write, fua) = match req {
        Request::Read { lba, len } => (lba, len, false, false),
        Request::Write { lba, len, fua } => (lba, len, true, fua),
        Request::Flush => return path.session.flush(path.lun).await.map(|()| 0),
        Request::Discard { lba, blocks } => {
            return match ctx.lu.geo.discard {
                Discard::WriteSameUnmap => write_same(ctx, path, lba, blocks, true).await.map(|()| 0),
                _ => unmap(path, lba, blocks).await.map(|()| 0),
            }
        }
        Request::WriteZeroes { lba, blocks, unmap } => {
            return write_same(ctx, path, lba, blocks, unmap).await.map(|()| 0)
        }
    };
    // Larger than the LU takes in one command (Block Limits): in pieces, in order.
    let step = ctx.lu.geo.max_xfer_bytes.max(bs as usize);
    for (i, chunk) in buf[..len].chunks_mut(step).enumerate() {
        let at = lba + u64::try_from(i * step / bs as usize).unwrap_or(0);
        // SAFETY: the chunk is part of this tag's ublk IO buffer, which only this tag's task
        // uses while its request is in flight, and which is freed only after the task (and
        // so this future, which the queue executor never leaks) has been dropped.
        let lent = unsafe { RawIoBuf::new(chunk.as_mut_ptr(), chunk.len()) };
        if write {
            path.session.write(path.lun, at, bs, lent, fua).await.1?;
        } else {
            path.session.read(path.lun, at, bs, lent).await.1?;
        }
    }
    Ok(i32::try_from(len).unwrap_or(i32::MAX))
}

/// WRITE SAME(16) of the queue's zero block (SBC-3 §5.45).
pub(super) async fn write_same(ctx: &QueueCtx, path: &IoPath, lba: u64, blocks: u32, unmap: bool) -> Result<(), ScsiOpError> {
    // SAFETY: the queue's zero block outlives every tag task of the queue and is never
    // written: the engine only reads the data of a data-out command.
    let zero = unsafe { RawIoBuf::new(ctx.zero.as_ptr().cast_mut(), ctx.zero.len()) };
    path.session.write_same(path.lun, lba, blocks, unmap, zero).await.1
}

/// UNMAP of one range (SBC-3 §5.28).
pub(super) async fn unmap(path: &IoPath, lba: u64, blocks: u32) -> Result<(), ScsiOpError> {
    path.session.unmap(path.lun, &[(lba, blocks)]).await
}
