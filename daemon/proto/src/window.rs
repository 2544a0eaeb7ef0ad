//! The CmdSN window (RFC 7143 §4.2.2.1): non-immediate commands may be sent while
//! CmdSN <= MaxCmdSN; the target moves the window with ExpCmdSN/MaxCmdSN in its responses.

use crate::serial;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CmdWindow {
    /// The CmdSN the next non-immediate command gets.
    next: u32,
    exp: u32,
    max: u32,
}

impl CmdWindow {
    /// Starts from the values of the final Login Response.
    pub fn new(cmd_sn: u32, exp_cmd_sn: u32, max_cmd_sn: u32) -> Self {
        let mut w = Self { next: cmd_sn, exp: exp_cmd_sn, max: exp_cmd_sn.wrapping_sub(1) };
        w.update(exp_cmd_sn, max_cmd_sn);
        w
    }

    /// Applies ExpCmdSN/MaxCmdSN from a target PDU. Values out of order or describing an
    /// invalid window (MaxCmdSN < ExpCmdSN - 1) are ignored, as §4.2.2.1 requires.
    pub fn update(&mut self, exp_cmd_sn: u32, max_cmd_sn: u32) {
        if serial::lt(max_cmd_sn, exp_cmd_sn.wrapping_sub(1)) {
            return;
        }
        if serial::lt(self.exp, exp_cmd_sn) || self.exp == exp_cmd_sn {
            self.exp = exp_cmd_sn;
        }
        if serial::lt(self.max, max_cmd_sn) {
            self.max = max_cmd_sn;
        }
    }

    /// Whether a non-immediate command may be sent now.
    pub fn is_open(&self) -> bool {
        serial::le(self.next, self.max)
    }

    /// Takes the CmdSN for a non-immediate command. Check [`Self::is_open`] first.
    pub fn take(&mut self) -> u32 {
        let sn = self.next;
        self.next = self.next.wrapping_add(1);
        sn
    }

    /// The CmdSN an immediate command carries (it does not advance the counter, §3.2.2.1).
    pub fn current(&self) -> u32 {
        self.next
    }

    pub fn exp_cmd_sn(&self) -> u32 {
        self.exp
    }

    pub fn max_cmd_sn(&self) -> u32 {
        self.max
    }

    /// How many more non-immediate commands the window admits now.
    pub fn room(&self) -> u32 {
        if self.is_open() {
            self.max.wrapping_sub(self.next).wrapping_add(1)
        } else {
            0
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_and_closes() {
        let mut w = CmdWindow::new(1, 1, 2);
        assert_eq!(w.room(), 2);
        assert_eq!(w.take(), 1);
        assert_eq!(w.take(), 2);
        assert!(!w.is_open());
        w.update(2, 3);
        assert!(w.is_open());
        assert_eq!(w.take(), 3);
    }

    /// RFC 7143 §4.2.2.1: MaxCmdSN = ExpCmdSN - 1 is an empty window; a MaxCmdSN below
    /// ExpCmdSN - 1 is invalid and the whole update is ignored; ExpCmdSN and MaxCmdSN never
    /// move backwards (serial arithmetic, §4.2.2.1 / RFC 1982).
    #[test]
    fn zero_window_and_stale_updates() {
        // MaxCmdSN = ExpCmdSN - 1: the window is closed.
        let mut w = CmdWindow::new(5, 5, 4);
        assert!(!w.is_open());
        w.update(5, 10);
        assert_eq!(w.room(), 6);
        // A stale (smaller) MaxCmdSN never shrinks the window.
        w.update(5, 7);
        assert_eq!(w.max_cmd_sn(), 10);
        // An invalid window is ignored entirely.
        w.update(20, 3);
        assert_eq!(w.exp_cmd_sn(), 5);
    }

    /// A target that never opens the window (MaxCmdSN below ExpCmdSN - 1 in every PDU) keeps
    /// it shut: no command may go out, whatever it sends (§4.2.2.1).
    #[test]
    fn an_invalid_window_in_every_pdu_stays_shut() {
        let mut w = CmdWindow::new(1, 1, u32::MAX); // MaxCmdSN = ExpCmdSN - 2
        assert!(!w.is_open());
        for exp in 1..100u32 {
            w.update(exp, exp.wrapping_sub(2));
            assert!(!w.is_open());
            assert_eq!(w.room(), 0);
        }
    }

    #[test]
    fn wraps_around() {
        let mut w = CmdWindow::new(u32::MAX, u32::MAX, 1);
        assert_eq!(w.room(), 3);
        assert_eq!(w.take(), u32::MAX);
        assert_eq!(w.take(), 0);
        assert_eq!(w.take(), 1);
        assert!(!w.is_open());
    }
}
