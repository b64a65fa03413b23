//! The dependency graph of a plan, by index. Iterative algorithms only: a plan may be a chain of
//! ten thousand deliverables, and recursion that deep would overflow the stack.

use std::collections::HashMap;

use super::Plan;
use crate::id::DeliverableId;

/// Dependencies and dependents of every deliverable of a validated plan, by position.
#[derive(Clone, Debug)]
pub struct Graph {
    index: HashMap<DeliverableId, usize>,
    dependencies: Vec<Vec<usize>>,
    dependents: Vec<Vec<usize>>,
}

impl Graph {
    pub fn new(plan: &Plan) -> Self {
        let index: HashMap<DeliverableId, usize> = plan
            .deliverables
            .iter()
            .enumerate()
            .map(|(i, d)| (d.id.clone(), i))
            .collect();
        let dependencies: Vec<Vec<usize>> = plan
            .deliverables
            .iter()
            .map(|d| {
                d.dependencies
                    .iter()
                    .filter_map(|dep| index.get(dep).copied())
                    .collect()
            })
            .collect();
        let mut dependents = vec![Vec::new(); dependencies.len()];
        for (i, deps) in dependencies.iter().enumerate() {
            for &dep in deps {
                dependents[dep].push(i);
            }
        }
        Self {
            index,
            dependencies,
            dependents,
        }
    }

    pub fn position(&self, id: &str) -> Option<usize> {
        self.index.get(id).copied()
    }

    pub fn dependencies(&self, i: usize) -> &[usize] {
        self.dependencies.get(i).map_or(&[], Vec::as_slice)
    }

    pub fn dependents(&self, i: usize) -> &[usize] {
        self.dependents.get(i).map_or(&[], Vec::as_slice)
    }

    /// Everything that depends on `i`, directly or not, in breadth-first order.
    pub fn transitive_dependents(&self, i: usize) -> Vec<usize> {
        let mut seen = vec![false; self.dependents.len()];
        let mut out = Vec::new();
        let mut queue = std::collections::VecDeque::from([i]);
        while let Some(node) = queue.pop_front() {
            for &next in self.dependents(node) {
                if !seen[next] {
                    seen[next] = true;
                    out.push(next);
                    queue.push_back(next);
                }
            }
        }
        out
    }
}

/// Cycles among `deps` (node -> the nodes it depends on), each as a path of positions that
/// starts and ends at the same node. At most one cycle is reported per group of entangled
/// nodes, found by a depth-first search in plan order, so the output is deterministic.
pub(crate) fn find_cycles(deps: &[Vec<usize>]) -> Vec<Vec<usize>> {
    #[derive(Clone, Copy, PartialEq)]
    enum Color {
        White,
        Gray,
        Black,
    }
    let n = deps.len();
    let mut color = vec![Color::White; n];
    let mut reported = vec![false; n];
    let mut cycles = Vec::new();
    for root in 0..n {
        if color[root] != Color::White {
            continue;
        }
        // (node, index of the next dependency to visit)
        let mut stack: Vec<(usize, usize)> = vec![(root, 0)];
        color[root] = Color::Gray;
        while let Some(top) = stack.last_mut() {
            let (node, next) = *top;
            let Some(&dep) = deps[node].get(next) else {
                color[node] = Color::Black;
                stack.pop();
                continue;
            };
            top.1 += 1;
            match color[dep] {
                Color::White => {
                    color[dep] = Color::Gray;
                    stack.push((dep, 0));
                }
                Color::Gray => {
                    let start = stack.iter().position(|&(n, _)| n == dep).unwrap_or(0);
                    let mut path: Vec<usize> = stack[start..].iter().map(|&(n, _)| n).collect();
                    if path.iter().all(|&n| !reported[n]) {
                        for &n in &path {
                            reported[n] = true;
                        }
                        path.push(dep);
                        cycles.push(path);
                    }
                }
                Color::Black => {}
            }
        }
    }
    cycles
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_cycles_in_a_diamond() {
        // 0 <- 1, 0 <- 2, {1,2} <- 3
        let deps = vec![vec![], vec![0], vec![0], vec![1, 2]];
        assert!(find_cycles(&deps).is_empty());
    }

    #[test]
    fn finds_a_self_loop() {
        assert_eq!(find_cycles(&[vec![0]]), vec![vec![0, 0]]);
    }

    #[test]
    fn finds_a_long_cycle_with_its_path() {
        // 0 depends on 2, 2 on 1, 1 on 0
        let deps = vec![vec![2], vec![0], vec![1]];
        assert_eq!(find_cycles(&deps), vec![vec![0, 2, 1, 0]]);
    }

    #[test]
    fn reports_disjoint_cycles_separately() {
        let deps = vec![vec![1], vec![0], vec![3], vec![2], vec![]];
        assert_eq!(find_cycles(&deps), vec![vec![0, 1, 0], vec![2, 3, 2]]);
    }

    #[test]
    fn survives_a_very_long_chain() {
        let n = 100_000;
        let mut deps: Vec<Vec<usize>> = (0..n)
            .map(|i| if i == 0 { vec![] } else { vec![i - 1] })
            .collect();
        assert!(find_cycles(&deps).is_empty());
        deps[0] = vec![n - 1];
        let cycles = find_cycles(&deps);
        assert_eq!(cycles.len(), 1);
        assert_eq!(cycles[0].len(), n + 1);
    }
}
