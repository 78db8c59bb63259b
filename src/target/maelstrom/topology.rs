//! The neighbour maps Maelstrom's broadcast workload sends in `topology`,
//! computed as Maelstrom computes them (`maelstrom.workload.broadcast`):
//! a roughly square grid by default, or a line, every other node, or a tree
//! of branch factor 2, 3 or 4. No node is ever its own neighbour.

use serde_json::{Map, Value};

/// A topology shape, as `--topology` names it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Topology {
    /// Nodes on a square grid of side ceil(sqrt(n)), up to 4 neighbours.
    #[default]
    Grid,
    /// Nodes in one line: the ends have one neighbour, the rest two.
    Line,
    /// Every node neighbours every other node.
    Total,
    /// A tree filled tier by tier with this many children per node.
    Tree(usize),
}

impl Topology {
    /// Every name `--topology` accepts.
    pub const NAMES: [&'static str; 7] =
        ["grid", "line", "total", "tree", "tree2", "tree3", "tree4"];

    /// Parses a `--topology` name (`tree` is `tree2`, as in Maelstrom).
    pub fn parse(name: &str) -> Option<Topology> {
        Some(match name {
            "grid" => Topology::Grid,
            "line" => Topology::Line,
            "total" => Topology::Total,
            "tree" | "tree2" => Topology::Tree(2),
            "tree3" => Topology::Tree(3),
            "tree4" => Topology::Tree(4),
            _ => return None,
        })
    }

    /// The name that parses back to this topology.
    pub fn name(self) -> String {
        match self {
            Topology::Grid => "grid".into(),
            Topology::Line => "line".into(),
            Topology::Total => "total".into(),
            Topology::Tree(b) => format!("tree{b}"),
        }
    }

    /// Each node's neighbours, by index, in Maelstrom's order.
    pub fn neighbours(self, n: usize) -> Vec<Vec<usize>> {
        match self {
            Topology::Grid => grid(n),
            Topology::Line => (0..n)
                .map(|i| {
                    if n < 2 {
                        Vec::new()
                    } else if i == 0 {
                        vec![1]
                    } else if i == n - 1 {
                        vec![n - 2]
                    } else {
                        vec![i - 1, i + 1]
                    }
                })
                .collect(),
            Topology::Total => (0..n)
                .map(|i| (0..n).filter(|&j| j != i).collect())
                .collect(),
            Topology::Tree(b) => tree(b.max(1), n),
        }
    }

    /// The `topology` field of the message: node name to neighbour names.
    /// Maelstrom's line topology of a single node is the empty map.
    pub fn to_json(self, node_ids: &[String]) -> Map<String, Value> {
        let n = node_ids.len();
        let mut map = Map::new();
        if self == Topology::Line && n < 2 {
            return map;
        }
        for (i, peers) in self.neighbours(n).into_iter().enumerate() {
            let peers: Vec<Value> = peers
                .into_iter()
                .map(|j| Value::from(node_ids[j].as_str()))
                .collect();
            map.insert(node_ids[i].clone(), Value::from(peers));
        }
        map
    }
}

/// Node `i*side + j` sits at row i, column j; neighbours in the order
/// below, above, right, left, as Maelstrom lists them.
fn grid(n: usize) -> Vec<Vec<usize>> {
    let mut side = 0;
    while side * side < n {
        side += 1;
    }
    let at = |i: isize, j: isize| -> Option<usize> {
        if i < 0 || j < 0 || j >= side as isize {
            return None;
        }
        let idx = i as usize * side + j as usize;
        (idx < n).then_some(idx)
    };
    (0..n)
        .map(|idx| {
            let (i, j) = ((idx / side) as isize, (idx % side) as isize);
            [at(i + 1, j), at(i - 1, j), at(i, j + 1), at(i, j - 1)]
                .into_iter()
                .flatten()
                .collect()
        })
        .collect()
}

/// Tiers of 1, b, b², ... nodes in order; the k-th node of a tier is the
/// parent of the k-th run of b nodes in the next tier. A node's neighbours
/// are its parent (first) and then its children.
fn tree(b: usize, n: usize) -> Vec<Vec<usize>> {
    let mut tiers: Vec<std::ops::Range<usize>> = Vec::new();
    let (mut start, mut size) = (0, 1usize);
    while start < n {
        let end = (start + size).min(n);
        tiers.push(start..end);
        start = end;
        size = size.saturating_mul(b);
    }
    let mut out = vec![Vec::new(); n];
    for pair in tiers.windows(2) {
        let (parents, children) = (&pair[0], &pair[1]);
        for (k, child) in children.clone().enumerate() {
            let parent = parents.start + k / b;
            out[child].push(parent);
        }
    }
    for pair in tiers.windows(2) {
        let (parents, children) = (&pair[0], &pair[1]);
        for (k, child) in children.clone().enumerate() {
            let parent = parents.start + k / b;
            out[parent].push(child);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("n{i}")).collect()
    }

    #[test]
    fn maelstrom_shapes_for_five_nodes() {
        // Worked by hand from Maelstrom's broadcast.clj for n0..n4.
        assert_eq!(
            Topology::Grid.neighbours(5),
            vec![vec![3, 1], vec![4, 2, 0], vec![1], vec![0, 4], vec![1, 3]]
        );
        assert_eq!(
            Topology::Line.neighbours(5),
            vec![vec![1], vec![0, 2], vec![1, 3], vec![2, 4], vec![3]]
        );
        assert_eq!(
            Topology::Tree(2).neighbours(5),
            vec![vec![1, 2], vec![0, 3, 4], vec![0], vec![1], vec![1]]
        );
        assert_eq!(
            Topology::Tree(4).neighbours(7),
            vec![
                vec![1, 2, 3, 4],
                vec![0, 5, 6],
                vec![0],
                vec![0],
                vec![0],
                vec![1],
                vec![1]
            ]
        );
        assert_eq!(Topology::Tree(3).neighbours(5)[1], vec![0, 4]);
    }

    #[test]
    fn no_node_is_its_own_neighbour_and_every_shape_is_symmetric_and_connected() {
        for name in Topology::NAMES {
            let t = Topology::parse(name).unwrap();
            for n in 1..=26 {
                let nb = t.neighbours(n);
                assert_eq!(nb.len(), n);
                for (i, peers) in nb.iter().enumerate() {
                    assert!(!peers.contains(&i), "{name} n={n}: n{i} lists itself");
                    for &j in peers {
                        assert!(nb[j].contains(&i), "{name} n={n}: n{i}->n{j} one-way");
                    }
                }
                let mut seen = vec![false; n];
                let mut stack = vec![0];
                while let Some(i) = stack.pop() {
                    if !std::mem::replace(&mut seen[i], true) {
                        stack.extend(nb[i].iter().copied());
                    }
                }
                assert!(seen.iter().all(|s| *s), "{name} n={n}: not connected");
            }
        }
    }

    #[test]
    fn names_round_trip_and_json_names_nodes() {
        for name in Topology::NAMES {
            let t = Topology::parse(name).unwrap();
            assert_eq!(Topology::parse(&t.name()), Some(t));
        }
        assert_eq!(Topology::parse("ring"), None);
        let json = Topology::Total.to_json(&names(3));
        assert_eq!(json["n1"], serde_json::json!(["n0", "n2"]));
        assert!(Topology::Line.to_json(&names(1)).is_empty());
        assert_eq!(
            Topology::Grid.to_json(&names(1))["n0"],
            serde_json::json!([])
        );
    }
}
