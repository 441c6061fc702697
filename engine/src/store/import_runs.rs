//! How a contact import is cut into statements: a multi-row upsert may not touch one row
//! twice (PostgreSQL refuses `ON CONFLICT DO UPDATE` on a row the same statement already
//! wrote), so a list is cut into consecutive runs of distinct numbers. Applied in order,
//! the runs give what the rows applied one by one give: a number repeated later in the
//! list updates the row its first occurrence wrote.

use std::collections::HashSet;

use crate::model::NewContact;

/// Most rows in one upsert statement.
pub(crate) const MAX_RUN: usize = 5000;

/// `list` cut into consecutive runs of at most `max` rows, no number twice in a run.
pub(crate) fn distinct_runs(list: &[NewContact], max: usize) -> Vec<&[NewContact]> {
    let max = max.max(1);
    let mut runs = vec![];
    let mut seen: HashSet<&str> = HashSet::new();
    let mut start = 0;
    for (i, k) in list.iter().enumerate() {
        if i - start == max || seen.contains(k.number.as_str()) {
            runs.push(&list[start..i]);
            seen.clear();
            start = i;
        }
        seen.insert(&k.number);
    }
    if start < list.len() {
        runs.push(&list[start..]);
    }
    runs
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{NumberType, Source};

    fn k(n: &str) -> NewContact {
        NewContact {
            number: n.into(),
            number_type: NumberType::Fixed,
            street: String::new(),
            house_number: String::new(),
            zone: String::new(),
            source: Source::Directory,
            opt_out: false,
        }
    }

    fn numbers(runs: &[&[NewContact]]) -> Vec<Vec<String>> {
        runs.iter()
            .map(|r| r.iter().map(|c| c.number.clone()).collect())
            .collect()
    }

    #[test]
    fn runs_hold_distinct_numbers_in_list_order() {
        let list: Vec<NewContact> = ["a", "b", "a", "c", "b", "b"].map(k).to_vec();
        let runs = distinct_runs(&list, 100);
        assert_eq!(
            numbers(&runs),
            [vec!["a", "b"], vec!["a", "c", "b"], vec!["b"]]
        );
    }

    #[test]
    fn runs_are_bounded_and_cover_the_list() {
        let list: Vec<NewContact> = (0..12).map(|i| k(&i.to_string())).collect();
        let runs = distinct_runs(&list, 5);
        assert_eq!(runs.iter().map(|r| r.len()).collect::<Vec<_>>(), [5, 5, 2]);
        assert!(distinct_runs(&[], 5).is_empty());
        assert_eq!(distinct_runs(&list, 0).len(), 12);
    }
}
