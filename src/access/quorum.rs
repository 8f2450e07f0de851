//! Quorum: whether the approvals recorded on a request meet the access policy's
//! requirements (k-of-n per requirement, AND across requirements, one person per slot).

use crate::grant::resource::Approval;
use crate::policy::Requirement;

/// Whether distinct approvers can be assigned to every requirement's slots (k-of-n per
/// requirement, AND across requirements, one person per slot): a bipartite matching.
pub fn satisfied(requirements: &[Requirement], approvals: &[&Approval]) -> bool {
    let has_slots = requirements.iter().any(|r| r.count > 0);
    has_slots && unmet(requirements, approvals).is_empty()
}

/// What approval still needs: each requirement with slots no approver fills, and how many,
/// under a best assignment of the approvals so far. Empty when every slot is filled.
pub fn unmet<'r>(
    requirements: &'r [Requirement],
    approvals: &[&Approval],
) -> Vec<(&'r Requirement, usize)> {
    let slots: Vec<&Requirement> = requirements
        .iter()
        .flat_map(|r| std::iter::repeat_n(r, r.count))
        .collect();
    let mut people: Vec<&Approval> = Vec::new();
    for a in approvals {
        if !people.iter().any(|p| p.approver == a.approver) {
            people.push(a);
        }
    }
    // slot -> person assigned
    let mut assigned: Vec<Option<usize>> = vec![None; slots.len()];
    for person in 0..people.len() {
        let mut seen = vec![false; slots.len()];
        augment(person, &people, &slots, &mut assigned, &mut seen);
    }
    requirements
        .iter()
        .filter_map(|r| {
            let open = slots
                .iter()
                .zip(&assigned)
                .filter(|(slot, person)| std::ptr::eq(**slot, r) && person.is_none())
                .count();
            (open > 0).then_some((r, open))
        })
        .collect()
}

fn augment(
    person: usize,
    people: &[&Approval],
    slots: &[&Requirement],
    assigned: &mut [Option<usize>],
    seen: &mut [bool],
) -> bool {
    let Some(p) = people.get(person) else {
        return false;
    };
    for (slot, requirement) in slots.iter().enumerate() {
        let fits = requirement
            .groups
            .iter()
            .any(|g| p.approver_groups.contains(g));
        if !fits || seen.get(slot).copied().unwrap_or(true) {
            continue;
        }
        if let Some(s) = seen.get_mut(slot) {
            *s = true;
        }
        let current = assigned.get(slot).copied().flatten();
        let free = match current {
            None => true,
            Some(other) => augment(other, people, slots, assigned, seen),
        };
        if free {
            if let Some(a) = assigned.get_mut(slot) {
                *a = Some(person);
            }
            return true;
        }
    }
    false
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::access::fixture::{approval, req};

    #[test]
    fn k_of_n_and_across_requirements_with_distinct_people() {
        let lead = req("lead", &["leads"], 1);
        let security = req("security", &["security"], 1);
        let two_leads = req("leads", &["leads"], 2);
        let both = approval("bob", &["leads", "security"]);
        let carol = approval("carol", &["security"]);
        let dave = approval("dave", &["leads"]);
        // One person in both groups does not satisfy both requirements.
        assert!(!satisfied(&[lead.clone(), security.clone()], &[&both]));
        assert!(satisfied(
            &[lead.clone(), security.clone()],
            &[&both, &carol]
        ));
        // The matching finds the assignment even when the first choice blocks it.
        assert!(satisfied(
            &[security.clone(), lead.clone()],
            &[&both, &dave]
        ));
        assert!(!satisfied(
            std::slice::from_ref(&two_leads),
            &[&dave, &dave]
        ));
        assert!(satisfied(std::slice::from_ref(&two_leads), &[&dave, &both]));
        assert!(!satisfied(&[], &[&dave]));
        // What is still needed, per requirement.
        let both_needs = [lead.clone(), security.clone()];
        assert_eq!(unmet(&both_needs, &[&dave]), [(&security, 1)]);
        assert_eq!(unmet(&both_needs, &[&both]).len(), 1);
        assert_eq!(
            unmet(std::slice::from_ref(&two_leads), &[]),
            [(&two_leads, 2)]
        );
        assert!(unmet(&both_needs, &[&dave, &carol]).is_empty());
    }
}
