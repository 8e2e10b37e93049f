//! Conditions evaluated against an item, update actions applied to it, projections.

use super::*;

/// The value at a path, if there is one.
pub fn lookup<'i>(item: &'i Item, path: &Path) -> Option<&'i Attr> {
    let mut steps = path.0.iter();
    let mut cur = match steps.next()? {
        Step::Key(k) => item.get(k)?,
        Step::Index(_) => return None,
    };
    for step in steps {
        cur = match (step, cur) {
            (Step::Key(k), Attr::M(m)) => m.get(k)?,
            (Step::Index(i), Attr::L(l)) => l.get(*i)?,
            _ => return None,
        };
    }
    Some(cur)
}

fn resolve(item: &Item, o: &Operand) -> Option<Attr> {
    match o {
        Operand::Value(v) => Some(v.clone()),
        Operand::Path(p) => lookup(item, p).cloned(),
        Operand::Size(p) => {
            let n = match lookup(item, p)? {
                Attr::S(s) => s.chars().count(),
                Attr::B(b) => b.len(),
                Attr::L(l) => l.len(),
                Attr::M(m) => m.len(),
                Attr::Ss(s) => s.len(),
                Attr::Ns(s) => s.len(),
                Attr::Bs(s) => s.len(),
                _ => return None,
            };
            Some(Attr::N(Decimal::from_i64(n as i64)))
        }
    }
}

/// Whether an item (an empty one when there is none) meets a condition. Order
/// comparisons of values of different types, or with a missing attribute, are false; a
/// missing attribute is not equal (`<>`) to anything, as in DynamoDB.
pub fn eval(cond: &Cond, item: &Item) -> Result<bool, String> {
    Ok(match cond {
        Cond::Cmp(a, op, b) => {
            let (Some(a), Some(b)) = (resolve(item, a), resolve(item, b)) else {
                return Ok(*op == Cmp::Ne);
            };
            match op {
                Cmp::Eq => a == b,
                Cmp::Ne => a != b,
                _ => match a.compare(&b) {
                    None => false,
                    Some(o) => match op {
                        Cmp::Lt => o == Ordering::Less,
                        Cmp::Le => o != Ordering::Greater,
                        Cmp::Gt => o == Ordering::Greater,
                        _ => o != Ordering::Less,
                    },
                },
            }
        }
        Cond::Between(a, lo, hi) => {
            let (Some(a), Some(lo), Some(hi)) =
                (resolve(item, a), resolve(item, lo), resolve(item, hi))
            else {
                return Ok(false);
            };
            if lo.compare(&hi) == Some(Ordering::Greater) {
                return Err(format!(
                    "Invalid ConditionExpression: The BETWEEN operator requires upper bound to be greater than or equal to lower bound; lower bound operand: AttributeValue: {{{}}}, upper bound operand: AttributeValue: {{{}}}",
                    show(&lo),
                    show(&hi)
                ));
            }
            a.compare(&lo).is_some_and(|o| o != Ordering::Less)
                && a.compare(&hi).is_some_and(|o| o != Ordering::Greater)
        }
        Cond::In(a, list) => match resolve(item, a) {
            None => false,
            Some(a) => list.iter().any(|o| resolve(item, o).as_ref() == Some(&a)),
        },
        Cond::Exists(p) => lookup(item, p).is_some(),
        Cond::NotExists(p) => lookup(item, p).is_none(),
        Cond::Type(p, t) => {
            let want = match resolve(item, t) {
                Some(Attr::S(s)) => s,
                _ => return Err("Invalid ConditionExpression: Incorrect operand type for operator or function; operator or function: attribute_type".to_owned()),
            };
            const TYPES: [&str; 10] = ["S", "N", "B", "BOOL", "NULL", "L", "M", "SS", "NS", "BS"];
            if !TYPES.contains(&want.as_str()) {
                return Err(format!(
                    "Invalid ConditionExpression: Invalid attribute type name found; type: {want}, valid types: {{B,NULL,SS,BOOL,L,BS,N,NS,S,M}}"
                ));
            }
            lookup(item, p).is_some_and(|a| a.type_name() == want)
        }
        Cond::BeginsWith(a, prefix) => {
            let prefix = resolve(item, prefix);
            match (resolve(item, a), prefix) {
                (_, Some(p)) if !matches!(p, Attr::S(_) | Attr::B(_)) => {
                    return Err(format!(
                        "Invalid ConditionExpression: Incorrect operand type for operator or function; operator or function: begins_with, operand type: {}",
                        p.type_name()
                    ));
                }
                (Some(Attr::S(s)), Some(Attr::S(p))) => s.starts_with(&p),
                (Some(Attr::B(s)), Some(Attr::B(p))) => s.starts_with(&p),
                _ => false,
            }
        }
        Cond::Contains(a, b) => match (resolve(item, a), resolve(item, b)) {
            (Some(Attr::S(s)), Some(Attr::S(p))) => s.contains(&p),
            (Some(Attr::B(s)), Some(Attr::B(p))) => {
                p.is_empty() || s.windows(p.len()).any(|w| w == p.as_slice())
            }
            (Some(Attr::Ss(s)), Some(Attr::S(p))) => s.contains(&p),
            (Some(Attr::Ns(s)), Some(Attr::N(p))) => s.contains(&p),
            (Some(Attr::Bs(s)), Some(Attr::B(p))) => s.contains(&p),
            (Some(Attr::L(l)), Some(v)) => l.contains(&v),
            _ => false,
        },
        Cond::And(a, b) => eval(a, item)? && eval(b, item)?,
        Cond::Or(a, b) => eval(a, item)? || eval(b, item)?,
        Cond::Not(a) => !eval(a, item)?,
    })
}

fn show(a: &Attr) -> String {
    match a {
        Attr::S(s) => format!("S:{s}"),
        Attr::N(n) => format!("N:{n}"),
        other => other.type_name().to_owned(),
    }
}

fn operand_type_error(op: &str, a: &Attr) -> String {
    format!(
        "An operand in the update expression has an incorrect data type; operator or function: {op}, operand type: {}",
        a.type_name()
    )
}

fn set_value(item: &Item, v: &SetValue) -> Result<Attr, String> {
    match v {
        SetValue::Operand(o) => resolve(item, o).ok_or_else(|| {
            "The provided expression refers to an attribute that does not exist in the item"
                .to_owned()
        }),
        SetValue::IfNotExists(p, default) => match lookup(item, p) {
            Some(a) => Ok(a.clone()),
            None => set_value(item, default),
        },
        SetValue::ListAppend(a, b) => match (set_value(item, a)?, set_value(item, b)?) {
            (Attr::L(mut a), Attr::L(b)) => {
                a.extend(b);
                Ok(Attr::L(a))
            }
            (Attr::L(_), other) | (other, _) => Err(operand_type_error("list_append", &other)),
        },
        SetValue::Plus(a, b) | SetValue::Minus(a, b) => {
            let plus = matches!(v, SetValue::Plus(..));
            let op = if plus { "+" } else { "-" };
            match (set_value(item, a)?, set_value(item, b)?) {
                (Attr::N(a), Attr::N(b)) => Ok(Attr::N(if plus { a.add(&b)? } else { a.sub(&b)? })),
                (Attr::N(_), other) | (other, _) => Err(operand_type_error(op, &other)),
            }
        }
    }
}

/// Writes `value` at `path`, creating a top-level attribute or a map member; a list
/// index past the end appends.
fn put(item: &mut Item, path: &Path, value: Attr) -> Result<(), String> {
    let invalid =
        || "The document path provided in the update expression is invalid for update".to_owned();
    let (last, parents) = path.0.split_last().ok_or_else(invalid)?;
    if parents.is_empty() {
        let Step::Key(k) = last else {
            return Err(invalid());
        };
        item.insert(k.clone(), value);
        return Ok(());
    }
    let mut steps = parents.iter();
    let Some(Step::Key(first)) = steps.next() else {
        return Err(invalid());
    };
    let mut cur = item.get_mut(first).ok_or_else(invalid)?;
    for step in steps {
        cur = match (step, cur) {
            (Step::Key(k), Attr::M(m)) => m.get_mut(k).ok_or_else(invalid)?,
            (Step::Index(i), Attr::L(l)) => l.get_mut(*i).ok_or_else(invalid)?,
            _ => return Err(invalid()),
        };
    }
    match (last, cur) {
        (Step::Key(k), Attr::M(m)) => {
            m.insert(k.clone(), value);
        }
        (Step::Index(i), Attr::L(l)) => {
            if *i < l.len() {
                l[*i] = value;
            } else {
                l.push(value);
            }
        }
        _ => return Err(invalid()),
    }
    Ok(())
}

fn remove(item: &mut Item, path: &Path) {
    let Some((last, parents)) = path.0.split_last() else {
        return;
    };
    if parents.is_empty() {
        if let Step::Key(k) = last {
            item.remove(k);
        }
        return;
    }
    let mut steps = parents.iter();
    let Some(Step::Key(first)) = steps.next() else {
        return;
    };
    let Some(mut cur) = item.get_mut(first) else {
        return;
    };
    for step in steps {
        let next = match (step, cur) {
            (Step::Key(k), Attr::M(m)) => m.get_mut(k),
            (Step::Index(i), Attr::L(l)) => l.get_mut(*i),
            _ => None,
        };
        match next {
            Some(n) => cur = n,
            None => return,
        }
    }
    match (last, cur) {
        (Step::Key(k), Attr::M(m)) => {
            m.remove(k);
        }
        (Step::Index(i), Attr::L(l)) if *i < l.len() => {
            l.remove(*i);
        }
        _ => {}
    }
}

/// Applies an update expression's actions to an item. Every right-hand side reads the
/// item as it was before the update, as in DynamoDB.
pub fn apply(actions: &[Action], item: &Item) -> Result<Item, String> {
    let mut out = item.clone();
    // List elements are removed from the highest index down, so that earlier removals
    // do not shift later ones.
    let mut removals: Vec<&Path> = Vec::new();
    for action in actions {
        match action {
            Action::Set(path, v) => {
                let value = set_value(item, v)?;
                put(&mut out, path, value)?;
            }
            Action::Remove(path) => removals.push(path),
            Action::Add(path, v) => {
                if !matches!(v, Attr::N(_) | Attr::Ss(_) | Attr::Ns(_) | Attr::Bs(_)) {
                    return Err(format!(
                        "Invalid UpdateExpression: Incorrect operand type for operator or function; operator: ADD, operand type: {}",
                        type_word(v)
                    ));
                }
                let new = match (lookup(item, path), v) {
                    (None, _) => v.clone(),
                    (Some(Attr::N(a)), Attr::N(b)) => Attr::N(a.add(b)?),
                    (Some(a), b) => set_union(a, b).ok_or_else(|| operand_type_error("ADD", a))?,
                };
                put(&mut out, path, new)?;
            }
            Action::Delete(path, v) => {
                if !matches!(v, Attr::Ss(_) | Attr::Ns(_) | Attr::Bs(_)) {
                    return Err(format!(
                        "Invalid UpdateExpression: Incorrect operand type for operator or function; operator: DELETE, operand type: {}",
                        type_word(v)
                    ));
                }
                match lookup(item, path) {
                    None => {}
                    Some(a) => match set_difference(a, v) {
                        None => return Err(operand_type_error("DELETE", a)),
                        Some(Some(rest)) => put(&mut out, path, rest)?,
                        Some(None) => remove(&mut out, path),
                    },
                }
            }
        }
    }
    removals.sort_by(|a, b| b.0.cmp_steps(&a.0));
    for path in removals {
        remove(&mut out, path);
    }
    Ok(out)
}

fn type_word(a: &Attr) -> &'static str {
    match a {
        Attr::S(_) => "STRING",
        Attr::N(_) => "NUMBER",
        Attr::B(_) => "BINARY",
        Attr::Bool(_) => "BOOLEAN",
        Attr::Null => "NULL",
        Attr::L(_) => "LIST",
        Attr::M(_) => "MAP",
        Attr::Ss(_) => "STRING SET",
        Attr::Ns(_) => "NUMBER SET",
        Attr::Bs(_) => "BINARY SET",
    }
}

trait StepOrder {
    fn cmp_steps(&self, other: &Self) -> Ordering;
}

impl StepOrder for Vec<Step> {
    fn cmp_steps(&self, other: &Vec<Step>) -> Ordering {
        for (a, b) in self.iter().zip(other) {
            let o = match (a, b) {
                (Step::Key(a), Step::Key(b)) => a.cmp(b),
                (Step::Index(a), Step::Index(b)) => a.cmp(b),
                (Step::Key(_), Step::Index(_)) => Ordering::Less,
                (Step::Index(_), Step::Key(_)) => Ordering::Greater,
            };
            if o != Ordering::Equal {
                return o;
            }
        }
        self.len().cmp(&other.len())
    }
}

/// The top-level attributes an update's actions touch (for `UPDATED_OLD`/`UPDATED_NEW`).
pub fn touched(actions: &[Action]) -> BTreeSet<String> {
    actions
        .iter()
        .map(|a| match a {
            Action::Set(p, _) | Action::Remove(p) | Action::Add(p, _) | Action::Delete(p, _) => {
                p.head().to_owned()
            }
        })
        .collect()
}

/// The item cut down to the projected paths (nested paths keep their structure).
pub fn project(item: &Item, paths: &[Path]) -> Item {
    let mut out = Item::new();
    for path in paths {
        let Some(value) = lookup(item, path) else {
            continue;
        };
        let mut steps = path.0.iter();
        let Some(Step::Key(first)) = steps.next() else {
            continue;
        };
        let rest: Vec<&Step> = steps.collect();
        if rest.is_empty() {
            out.insert(first.clone(), value.clone());
            continue;
        }
        let Some(source) = item.get(first) else {
            continue;
        };
        let slot = out
            .entry(first.clone())
            .or_insert_with(|| empty_like(source));
        graft(slot, source, &rest, value);
    }
    out
}

fn empty_like(a: &Attr) -> Attr {
    match a {
        Attr::M(_) => Attr::M(Item::new()),
        Attr::L(_) => Attr::L(Vec::new()),
        other => other.clone(),
    }
}

fn graft(slot: &mut Attr, source: &Attr, rest: &[&Step], value: &Attr) {
    let Some((step, more)) = rest.split_first() else {
        return;
    };
    match (step, slot, source) {
        (Step::Key(k), Attr::M(m), Attr::M(src)) => {
            let Some(inner) = src.get(k) else { return };
            if more.is_empty() {
                m.insert(k.clone(), value.clone());
            } else {
                let s = m.entry(k.clone()).or_insert_with(|| empty_like(inner));
                graft(s, inner, more, value);
            }
        }
        (Step::Index(i), Attr::L(l), Attr::L(src)) => {
            let Some(inner) = src.get(*i) else { return };
            // Projected list elements keep their order but not their positions.
            if more.is_empty() {
                l.push(value.clone());
            } else {
                let mut s = empty_like(inner);
                graft(&mut s, inner, more, value);
                l.push(s);
            }
        }
        _ => {}
    }
}
