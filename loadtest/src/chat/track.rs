//! One receiver's view of a numbered sequence (a conversation's message numbers, a user's
//! notification numbers): what was lost, duplicated or reordered.

use std::collections::BTreeSet;

#[derive(Debug)]
pub struct Track {
    /// The next number expected in order.
    next: i64,
    /// Numbers skipped over, not received yet.
    missing: BTreeSet<i64>,
    pub duplicated: u64,
    pub reordered: u64,
}

impl Default for Track {
    fn default() -> Self {
        Self::after(0)
    }
}

impl Track {
    /// A track that expects `last + 1` first.
    pub fn after(last: i64) -> Self {
        Self {
            next: last + 1,
            missing: BTreeSet::new(),
            duplicated: 0,
            reordered: 0,
        }
    }

    /// Returns whether `seq` is new.
    pub fn receive(&mut self, seq: i64) -> bool {
        if seq == self.next {
            self.next += 1;
            true
        } else if seq > self.next {
            self.missing.extend(self.next..seq);
            self.next = seq + 1;
            true
        } else if self.missing.remove(&seq) {
            self.reordered += 1;
            true
        } else {
            self.duplicated += 1;
            false
        }
    }

    /// Numbers up to `last` never received.
    pub fn lost(&self, last: i64) -> u64 {
        let skipped = self.missing.range(..=last).count() as u64;
        skipped + u64::try_from(last - (self.next - 1)).unwrap_or(0)
    }

    /// Whether `seq` was received already.
    pub fn has(&self, seq: i64) -> bool {
        seq < self.next && !self.missing.contains(&seq)
    }

    /// The highest number below which nothing is missing: where a refetch starts after.
    pub fn contiguous(&self) -> i64 {
        self.missing
            .first()
            .map_or(self.next - 1, |&first| first - 1)
    }
}

#[cfg(test)]
mod tests {
    use super::Track;

    #[test]
    fn tracks_count_lost_duplicated_and_reordered() {
        let mut t = Track::default();
        for seq in [1, 2, 4, 3, 3, 6] {
            t.receive(seq);
        }
        assert_eq!((t.duplicated, t.reordered), (1, 1));
        assert_eq!(t.lost(6), 1); // 5
        assert_eq!(t.lost(8), 3); // 5, 7, 8
        assert_eq!(t.lost(4), 0);
        assert_eq!(t.contiguous(), 4);
        assert!(t.has(3) && !t.has(5) && t.has(6) && !t.has(7));
    }

    #[test]
    fn a_track_may_start_after_a_known_number() {
        let mut t = Track::after(7);
        assert!(t.receive(8));
        assert_eq!(t.lost(9), 1);
        assert_eq!(t.contiguous(), 8);
    }
}
