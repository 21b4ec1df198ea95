//! A decision's members as operators read them: "name 60.0%, other 40.0%". One place, so that
//! `explain` and `reload --check` say shares the same way.
use crate::model::VsId;

/// Each member's share of the summed weights, named by `name`, with `decimals` digits after
/// the point, in member order.
pub fn shares<D: std::fmt::Display>(
    members: &[(VsId, u32)],
    name: impl Fn(VsId) -> D,
    decimals: usize,
) -> Vec<String> {
    let total = members.iter().map(|m| m.1).sum::<u32>().max(1);
    members
        .iter()
        .map(|&(vs, weight)| {
            let pct = f64::from(weight) * 100.0 / f64::from(total);
            format!("{} {pct:.decimals$}%", name(vs))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_sum_the_weights_and_name_each_member() {
        let names = ["a", "b"];
        assert_eq!(
            shares(&[(0, 3), (1, 1)], |i| names[i], 1),
            ["a 75.0%", "b 25.0%"]
        );
        assert_eq!(
            shares(&[(1, 2), (0, 1)], |i| names[i], 0),
            ["b 67%", "a 33%"]
        );
        assert!(shares(&[], |i| names[i], 0).is_empty());
    }
}
