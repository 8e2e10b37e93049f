//! The AWS resource records: what Terraform (or any client of the AWS endpoint) created,
//! as `(kind, id, body)` with the body in the shape the AWS face answers it. The loop
//! owns them; the AWS handlers reach them through [`Call::Resources`] (made by
//! `Call::resources`), whose operation runs in the loop on [`Resources`]. What the
//! records mean to EC2 (a launch template's version, a subnet's zone, ingress rules) is
//! read in `aws/ec2/derived.rs`. Every change is written through to the state
//! database at once (its own connection to it), and a call whose changes the loop could
//! not apply is rolled back, records and database alike.
//!
//! [`Call::Resources`]: crate::api::Call::Resources

use std::any::Any;
use std::path::Path;

use bellows_aws::AwsError;
use serde_json::Value;

use crate::store::{Store, StoreError};

/// One record.
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    pub kind: String,
    pub id: String,
    pub body: Value,
}

/// A record as it was before a change, to undo it: `None` when it did not exist.
#[derive(Debug)]
struct Undo {
    kind: String,
    id: String,
    before: Option<(usize, Value)>,
}

/// The records of one stack, in creation order.
#[derive(Debug)]
pub struct Resources {
    stack: String,
    store: Store,
    records: Vec<Record>,
    /// What the call in progress changed, oldest first.
    journal: Vec<Undo>,
}

/// An operation on the records, run in the loop; its answer is type-erased so that one
/// `Call` variant serves every AWS handler (`Call::resources` makes one).
pub struct ResourceOp(
    #[allow(clippy::type_complexity)]
    pub  Box<dyn FnOnce(&mut Resources) -> Result<Box<dyn Any + Send>, AwsError> + Send>,
);

impl std::fmt::Debug for ResourceOp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ResourceOp")
    }
}

/// A record change's failure to reach the state database, in AWS's terms.
impl From<StoreError> for AwsError {
    fn from(e: StoreError) -> AwsError {
        AwsError::new(500, "InternalFailure", e.to_string())
    }
}

impl Resources {
    /// The stack's records from the state database at `path`.
    pub fn open(path: &Path, stack: &str) -> Result<Resources, StoreError> {
        Resources::load(Store::open(path)?, stack)
    }

    /// The stack's records from `store`, which the records keep to write through to.
    pub fn load(store: Store, stack: &str) -> Result<Resources, StoreError> {
        let records = store
            .resources(stack)?
            .into_iter()
            .map(|(kind, id, body)| Record { kind, id, body })
            .collect();
        Ok(Resources {
            stack: stack.to_owned(),
            store,
            records,
            journal: Vec::new(),
        })
    }

    /// The stack the records belong to.
    pub fn stack(&self) -> &str {
        &self.stack
    }

    /// Every record, in creation order.
    pub fn all(&self) -> &[Record] {
        &self.records
    }

    /// The records of one kind, in creation order.
    pub fn of<'a>(&'a self, kind: &'a str) -> impl Iterator<Item = &'a Record> + 'a {
        self.records.iter().filter(move |r| r.kind == kind)
    }

    pub fn get(&self, kind: &str, id: &str) -> Option<&Value> {
        self.position(kind, id).map(|i| &self.records[i].body)
    }

    pub fn contains(&self, kind: &str, id: &str) -> bool {
        self.position(kind, id).is_some()
    }

    fn position(&self, kind: &str, id: &str) -> Option<usize> {
        self.records
            .iter()
            .position(|r| r.kind == kind && r.id == id)
    }

    /// Creates a record, or replaces one (which keeps its place in the order).
    pub fn put(&mut self, kind: &str, id: &str, body: Value) -> Result<(), StoreError> {
        self.store.put_resource(&self.stack, kind, id, &body)?;
        let before = match self.position(kind, id) {
            Some(i) => {
                let was = std::mem::replace(&mut self.records[i].body, body);
                Some((i, was))
            }
            None => {
                self.records.push(Record {
                    kind: kind.to_owned(),
                    id: id.to_owned(),
                    body,
                });
                None
            }
        };
        self.journal.push(Undo {
            kind: kind.to_owned(),
            id: id.to_owned(),
            before,
        });
        Ok(())
    }

    /// Changes a record's body in place; `false` if there is no such record.
    pub fn update(
        &mut self,
        kind: &str,
        id: &str,
        change: impl FnOnce(&mut Value),
    ) -> Result<bool, StoreError> {
        let Some(mut body) = self.get(kind, id).cloned() else {
            return Ok(false);
        };
        change(&mut body);
        self.put(kind, id, body)?;
        Ok(true)
    }

    /// Deletes a record; its body, or `None` if there was no such record.
    pub fn delete(&mut self, kind: &str, id: &str) -> Result<Option<Value>, StoreError> {
        let Some(i) = self.position(kind, id) else {
            return Ok(None);
        };
        self.store.delete_resource(&self.stack, kind, id)?;
        let gone = self.records.remove(i);
        self.journal.push(Undo {
            kind: kind.to_owned(),
            id: id.to_owned(),
            before: Some((i, gone.body.clone())),
        });
        Ok(Some(gone.body))
    }

    /// A new id for a record: `prefix-` and 17 random hex digits, as EC2's ids are.
    pub fn new_id(&self, prefix: &str) -> Result<String, AwsError> {
        loop {
            let hex = crate::token::random_hex::<9>()
                .map_err(|e| AwsError::new(500, "InternalFailure", e.to_string()))?;
            let id = format!("{prefix}-{}", &hex[..17]);
            if !self.records.iter().any(|r| r.id == id) {
                return Ok(id);
            }
        }
    }

    /// The `(kind, id)` of every record the call in progress changed, once each, in the
    /// order first changed.
    pub fn changed(&self) -> Vec<(String, String)> {
        let mut out: Vec<(String, String)> = Vec::new();
        for u in &self.journal {
            if !out.iter().any(|(k, i)| *k == u.kind && *i == u.id) {
                out.push((u.kind.clone(), u.id.clone()));
            }
        }
        out
    }

    /// What the call in progress changed, once per record: `(kind, id, before, after)`,
    /// `None` where the record did not exist (created, or deleted).
    pub fn changes(&self) -> Vec<(String, String, Option<Value>, Option<Value>)> {
        self.changed()
            .into_iter()
            .map(|(kind, id)| {
                let before = self
                    .journal
                    .iter()
                    .find(|u| u.kind == kind && u.id == id)
                    .and_then(|u| u.before.as_ref().map(|(_, b)| b.clone()));
                let after = self.get(&kind, &id).cloned();
                (kind, id, before, after)
            })
            .collect()
    }

    /// The call's changes stand: forgets how to undo them.
    pub(crate) fn commit(&mut self) {
        self.journal.clear();
    }

    /// Undoes the call's changes, newest first, in the records and the database.
    pub(crate) fn rollback(&mut self) -> Result<(), StoreError> {
        while let Some(u) = self.journal.pop() {
            let now = self.position(&u.kind, &u.id);
            match (u.before, now) {
                (None, Some(i)) => {
                    self.store.delete_resource(&self.stack, &u.kind, &u.id)?;
                    self.records.remove(i);
                }
                (Some((_, body)), Some(i)) => {
                    self.store
                        .put_resource(&self.stack, &u.kind, &u.id, &body)?;
                    self.records[i].body = body;
                }
                (Some((at, body)), None) => {
                    self.store
                        .put_resource(&self.stack, &u.kind, &u.id, &body)?;
                    let at = at.min(self.records.len());
                    self.records.insert(
                        at,
                        Record {
                            kind: u.kind,
                            id: u.id,
                            body,
                        },
                    );
                }
                (None, None) => {}
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn temp(name: &str) -> std::path::PathBuf {
        let dir =
            std::env::temp_dir().join(format!("bellows-resources-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir.join("state.db")
    }

    #[test]
    fn changes_are_written_through_and_load_again_in_order() {
        let path = temp("through");
        {
            let mut r = Resources::open(&path, "web").unwrap();
            r.put("vpc", "vpc-1", json!({ "vpcId": "vpc-1" })).unwrap();
            r.put("subnet", "subnet-1", json!({ "n": 1 })).unwrap();
            r.put("subnet", "subnet-2", json!({ "n": 2 })).unwrap();
            assert!(r.update("vpc", "vpc-1", |b| b["x"] = json!(1)).unwrap());
            assert!(!r.update("vpc", "vpc-404", |_| {}).unwrap());
            assert_eq!(
                r.delete("subnet", "subnet-1").unwrap(),
                Some(json!({ "n": 1 }))
            );
            assert_eq!(r.delete("subnet", "subnet-1").unwrap(), None);
            r.commit();
        }
        let r = Resources::open(&path, "web").unwrap();
        let ids: Vec<&str> = r.all().iter().map(|r| r.id.as_str()).collect();
        assert_eq!(ids, ["vpc-1", "subnet-2"]);
        assert_eq!(
            r.get("vpc", "vpc-1"),
            Some(&json!({ "vpcId": "vpc-1", "x": 1 }))
        );
        assert_eq!(r.of("subnet").count(), 1);
        assert!(Resources::open(&path, "other").unwrap().all().is_empty());
    }

    #[test]
    fn a_rollback_undoes_the_call_in_memory_and_on_disk() {
        let path = temp("rollback");
        let mut r = Resources::open(&path, "web").unwrap();
        r.put("vpc", "vpc-1", json!({ "a": 1 })).unwrap();
        r.put("vpc", "vpc-2", json!({ "b": 1 })).unwrap();
        r.put("vpc", "vpc-3", json!({ "c": 1 })).unwrap();
        r.commit();
        r.put("vpc", "vpc-1", json!({ "a": 2 })).unwrap();
        r.delete("vpc", "vpc-2").unwrap();
        r.put("subnet", "subnet-1", json!({})).unwrap();
        assert_eq!(
            r.changed(),
            [
                ("vpc".to_owned(), "vpc-1".to_owned()),
                ("vpc".to_owned(), "vpc-2".to_owned()),
                ("subnet".to_owned(), "subnet-1".to_owned())
            ]
        );
        r.rollback().unwrap();
        assert!(r.changed().is_empty());
        let want = vec![
            Record {
                kind: "vpc".into(),
                id: "vpc-1".into(),
                body: json!({ "a": 1 }),
            },
            Record {
                kind: "vpc".into(),
                id: "vpc-2".into(),
                body: json!({ "b": 1 }),
            },
            Record {
                kind: "vpc".into(),
                id: "vpc-3".into(),
                body: json!({ "c": 1 }),
            },
        ];
        assert_eq!(r.all(), want.as_slice());
        let again = Resources::open(&path, "web").unwrap();
        let mut got: Vec<Record> = again.all().to_vec();
        got.sort_by(|a, b| a.id.cmp(&b.id));
        assert_eq!(got, want);
    }

    #[test]
    fn new_ids_look_like_ec2_ids() {
        let r = Resources::open(&temp("ids"), "web").unwrap();
        let id = r.new_id("vpc").unwrap();
        assert_eq!(id.len(), 4 + 17);
        assert!(id[4..].chars().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(id, r.new_id("vpc").unwrap());
    }
}
