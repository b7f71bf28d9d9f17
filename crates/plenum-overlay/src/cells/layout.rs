//! The cell graph: cells numbered in a mixed radix, neighbours when one digit differs.

/// How a cellular room's cells are numbered and linked: cell `c` is the digits of `c` in
/// these radices (least significant first), and two cells are neighbours when they differ
/// in exactly one digit (a Hamming graph: each digit is a complete graph of its values).
/// The graph's diameter is the number of digits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    radices: Vec<u16>,
}

impl Layout {
    /// One cell: a full mesh.
    pub fn single() -> Self {
        Self {
            radices: Vec::new(),
        }
    }

    /// The layout with the fewest digits (each at most `max_radix`, at least 2) that has at
    /// least `cells` cells, its radices as equal as can be, and no more cells than needed
    /// for that.
    pub fn for_cells(cells: u32, max_radix: u16) -> Self {
        if cells <= 1 {
            return Self::single();
        }
        let max_radix = u32::from(max_radix.max(2));
        let mut digits = 1u32;
        while u64::from(max_radix).pow(digits) < u64::from(cells) {
            digits += 1;
        }
        // The smallest radix r with r^digits >= cells.
        let mut r = 2u32;
        while u64::from(r).pow(digits) < u64::from(cells) {
            r += 1;
        }
        let mut radices = vec![r; digits as usize];
        // Lower digits one at a time while the product still holds `cells`.
        for i in 0..radices.len() {
            let product: u64 = radices.iter().map(|r| u64::from(*r)).product();
            if radices[i] > 2
                && product / u64::from(radices[i]) * u64::from(radices[i] - 1) >= u64::from(cells)
            {
                radices[i] -= 1;
            }
        }
        Self {
            radices: radices
                .into_iter()
                .map(|r| r.min(u32::from(u16::MAX)) as u16)
                .collect(),
        }
    }

    /// A layout from a plan's radices; `None` if a radix is below 2 or the count overflows.
    pub fn from_radices(radices: &[u16]) -> Option<Self> {
        if radices.iter().any(|r| *r < 2) {
            return None;
        }
        radices
            .iter()
            .try_fold(1u32, |n, r| n.checked_mul(u32::from(*r)))?;
        Some(Self {
            radices: radices.to_vec(),
        })
    }

    /// The radices, least significant first.
    pub fn radices(&self) -> &[u16] {
        &self.radices
    }

    /// How many cells.
    pub fn cell_count(&self) -> u32 {
        self.radices.iter().map(|r| u32::from(*r)).product()
    }

    /// How many digits: the most cell-to-cell steps between any two cells.
    pub fn diameter(&self) -> usize {
        self.radices.len()
    }

    fn digit(&self, cell: u32, d: usize) -> u32 {
        let below: u32 = self.radices[..d].iter().map(|r| u32::from(*r)).product();
        (cell / below) % u32::from(self.radices[d])
    }

    /// The digit in which `a` and `b` differ, if they differ in exactly one.
    pub fn edge_digit(&self, a: u32, b: u32) -> Option<u8> {
        let mut found = None;
        for d in 0..self.radices.len() {
            if self.digit(a, d) != self.digit(b, d) {
                if found.is_some() {
                    return None;
                }
                found = Some(d as u8);
            }
        }
        found
    }

    /// The highest digit in which `a` and `b` differ; `None` for one cell. A broadcast from
    /// `a`'s cell enters `b` along this digit (digits are fixed lowest first).
    pub fn last_difference(&self, a: u32, b: u32) -> Option<u8> {
        (0..self.radices.len())
            .rev()
            .find(|d| self.digit(a, *d) != self.digit(b, *d))
            .map(|d| d as u8)
    }

    /// Whether a broadcast from `origin`'s cell enters `cell` from `via`: the neighbour of
    /// `cell` along [`Self::last_difference`] that has `origin`'s digit there.
    pub fn enters_from(&self, origin: u32, cell: u32, via: u32) -> bool {
        match self.last_difference(origin, cell) {
            Some(d) => {
                self.edge_digit(cell, via) == Some(d)
                    && self.digit(via, usize::from(d)) == self.digit(origin, usize::from(d))
            }
            None => false,
        }
    }

    /// The neighbours of `cell` with the digit each differs in, in digit then cell order.
    pub fn neighbours(&self, cell: u32) -> Vec<(u8, u32)> {
        let mut out = Vec::new();
        let mut below = 1u32;
        for (d, r) in self.radices.iter().enumerate() {
            let r = u32::from(*r);
            let own = (cell / below) % r;
            for v in 0..r {
                if v != own {
                    out.push((d as u8, cell - own * below + v * below));
                }
            }
            below *= r;
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layouts_hold_their_cells_with_few_digits() {
        assert_eq!(Layout::for_cells(1, 8).radices(), &[] as &[u16]);
        assert_eq!(Layout::for_cells(5, 8).radices(), &[5]);
        assert_eq!(Layout::for_cells(7, 6).radices(), &[3, 3]);
        let big = Layout::for_cells(313, 48);
        assert_eq!(big.radices(), &[18, 18]);
        assert!(Layout::for_cells(300, 48).cell_count() >= 300);
        for cells in 2..400 {
            let l = Layout::for_cells(cells, 12);
            assert!(l.cell_count() >= cells, "{cells}: {:?}", l.radices());
            assert!(l.radices().iter().all(|r| (2..=12).contains(r)));
        }
    }

    #[test]
    fn every_cell_is_entered_from_exactly_one_neighbour_of_a_broadcasts_tree() {
        let l = Layout::from_radices(&[3, 4, 2]).unwrap();
        for origin in 0..l.cell_count() {
            for cell in 0..l.cell_count() {
                let parents: Vec<u32> = l
                    .neighbours(cell)
                    .into_iter()
                    .map(|(_, n)| n)
                    .filter(|n| l.enters_from(origin, cell, *n))
                    .collect();
                if cell == origin {
                    assert!(parents.is_empty());
                    assert_eq!(l.last_difference(origin, cell), None);
                    continue;
                }
                assert_eq!(parents.len(), 1, "{origin} -> {cell}: {parents:?}");
                // The parent is one digit nearer the origin, along a lower digit than the
                // step into the cell.
                let parent = parents[0];
                let d = l.last_difference(origin, cell).unwrap();
                assert!(l.last_difference(origin, parent).is_none_or(|p| p < d));
            }
        }
        // Cells 1 and 10 of [3, 4, 2] (digits 1,0,0 and 1,3,0) differ in digit 1.
        assert_eq!(l.last_difference(1, 10), Some(1));
        assert!(l.enters_from(1, 10, 1));
        assert!(!l.enters_from(1, 10, 4));
    }

    #[test]
    fn neighbours_differ_in_one_digit_and_are_symmetric() {
        let l = Layout::from_radices(&[3, 4, 2]).unwrap();
        for c in 0..l.cell_count() {
            let n = l.neighbours(c);
            assert_eq!(n.len(), 2 + 3 + 1);
            for (d, m) in n {
                assert!(m < l.cell_count());
                assert_eq!(l.edge_digit(c, m), Some(d));
                assert!(l.neighbours(m).contains(&(d, c)));
            }
        }
        assert_eq!(l.edge_digit(0, 0), None);
        assert_eq!(l.edge_digit(0, 4), None, "0 and 4 differ in two digits");
        assert!(Layout::from_radices(&[1]).is_none());
        assert!(Layout::from_radices(&[65535, 65535, 65535]).is_none());
    }
}
