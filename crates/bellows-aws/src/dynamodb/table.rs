//! A table's definition (what `CreateTable` said and `UpdateTable` changed), its key
//! schema, and what it answers to `DescribeTable`.

use std::cmp::Ordering;

use super::attr::{Attr, Item, Scalar};
use super::expr::{Cmp, Cond, Operand, Step};
use super::validation;
use crate::arn::ACCOUNT;
use crate::error::AwsError;
use crate::value::{Input, Value};

/// A key attribute: its name and type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyAttr {
    pub name: String,
    pub scalar: Scalar,
}

/// A table as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct TableDef {
    pub name: String,
    pub hash: KeyAttr,
    pub range: Option<KeyAttr>,
    /// `PROVISIONED` or `PAY_PER_REQUEST`.
    pub billing_mode: String,
    pub read_capacity: i64,
    pub write_capacity: i64,
    /// Seconds since the epoch.
    pub created: f64,
    pub id: String,
}

/// Checks a table name as DynamoDB does: 3 to 255 of `[a-zA-Z0-9_.-]`.
pub fn check_name(name: &str) -> Result<(), AwsError> {
    if !(3..=255).contains(&name.len()) {
        return Err(validation(format!(
            "1 validation error detected: Value '{name}' at 'tableName' failed to satisfy constraint: Member must have length greater than or equal to 3"
        )));
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b))
    {
        return Err(validation(format!(
            "1 validation error detected: Value '{name}' at 'tableName' failed to satisfy constraint: Member must satisfy regular expression pattern: [a-zA-Z0-9_.-]+"
        )));
    }
    Ok(())
}

fn capacity(input: &Input, mode: &str) -> Result<(i64, i64), AwsError> {
    let pt = input.get("ProvisionedThroughput");
    match (mode, pt) {
        ("PAY_PER_REQUEST", Some(_)) => Err(validation(
            "One or more parameter values were invalid: Neither ReadCapacityUnits nor WriteCapacityUnits can be specified when BillingMode is PAY_PER_REQUEST",
        )),
        ("PAY_PER_REQUEST", None) => Ok((0, 0)),
        (_, None) => Err(validation(
            "One or more parameter values were invalid: ReadCapacityUnits and WriteCapacityUnits must both be specified when BillingMode is PROVISIONED",
        )),
        (_, Some(_)) => {
            let pt = input.nested("ProvisionedThroughput");
            let r = pt.i64("ReadCapacityUnits")?;
            let w = pt.i64("WriteCapacityUnits")?;
            if r < 1 || w < 1 {
                return Err(validation(
                    "One or more parameter values were invalid: ReadCapacityUnits and WriteCapacityUnits must be at least 1",
                ));
            }
            Ok((r, w))
        }
    }
}

fn billing_mode(input: &Input) -> Result<Option<String>, AwsError> {
    match input.opt_str("BillingMode")? {
        None => Ok(None),
        Some(m) if m == "PROVISIONED" || m == "PAY_PER_REQUEST" => Ok(Some(m)),
        Some(m) => Err(validation(format!(
            "1 validation error detected: Value '{m}' at 'billingMode' failed to satisfy constraint: Member must satisfy enum value set: [PROVISIONED, PAY_PER_REQUEST]"
        ))),
    }
}

impl TableDef {
    /// A `CreateTable` request's table; `created` and `id` come from the shell.
    pub fn from_create(input: &Input, created: f64, id: String) -> Result<TableDef, AwsError> {
        let name = input.str("TableName")?;
        check_name(&name)?;
        for unsupported in ["GlobalSecondaryIndexes", "LocalSecondaryIndexes"] {
            if input.get(unsupported).is_some() {
                return Err(validation(format!(
                    "bellows does not implement secondary indexes ({unsupported})"
                )));
            }
        }
        let mut defs = Vec::new();
        for d in input.list("AttributeDefinitions") {
            let n = d.str("AttributeName")?;
            let t = d.str("AttributeType")?;
            let scalar = Scalar::parse(&t).ok_or_else(|| {
                validation(format!(
                    "1 validation error detected: Value '{t}' at 'attributeDefinitions.1.member.attributeType' failed to satisfy constraint: Member must satisfy enum value set: [B, N, S]"
                ))
            })?;
            if defs.iter().any(|(m, _)| *m == n) {
                return Err(validation(format!(
                    "Cannot have two attributes with the same name; attribute name: {n}"
                )));
            }
            defs.push((n, scalar));
        }
        let schema = input.list("KeySchema");
        let mut hash = None;
        let mut range = None;
        for k in &schema {
            let n = k.str("AttributeName")?;
            let kind = k.str("KeyType")?;
            let scalar = defs.iter().find(|(m, _)| *m == n).map(|(_, s)| *s).ok_or_else(|| {
                validation(format!(
                    "One or more parameter values were invalid: Some index key attributes are not defined in AttributeDefinitions. Keys: [{n}], AttributeDefinitions: [{}]",
                    defs.iter().map(|(m, _)| m.as_str()).collect::<Vec<_>>().join(", ")
                ))
            })?;
            let attr = KeyAttr { name: n, scalar };
            match kind.as_str() {
                "HASH" if hash.is_none() => hash = Some(attr),
                "RANGE" if range.is_none() && hash.is_some() => range = Some(attr),
                "HASH" => {
                    return Err(validation(
                        "Invalid KeySchema: Some index key attribute have no definition",
                    ));
                }
                "RANGE" => {
                    return Err(validation(
                        "Invalid KeySchema: The first KeySchemaElement is not a HASH key type",
                    ));
                }
                other => {
                    return Err(validation(format!(
                        "1 validation error detected: Value '{other}' at 'keySchema.1.member.keyType' failed to satisfy constraint: Member must satisfy enum value set: [HASH, RANGE]"
                    )));
                }
            }
        }
        let hash = hash.ok_or_else(|| {
            validation(
                "1 validation error detected: Value null at 'keySchema' failed to satisfy constraint: Member must not be null",
            )
        })?;
        if schema.len() > 2 {
            return Err(validation(
                "1 validation error detected: Value at 'keySchema' failed to satisfy constraint: Member must have length less than or equal to 2",
            ));
        }
        if defs.len() != schema.len() {
            return Err(validation(
                "One or more parameter values were invalid: Number of attributes in KeySchema does not exactly match number of attributes defined in AttributeDefinitions",
            ));
        }
        let mode = billing_mode(input)?.unwrap_or_else(|| "PROVISIONED".to_owned());
        let (read_capacity, write_capacity) = capacity(input, &mode)?;
        Ok(TableDef {
            name,
            hash,
            range,
            billing_mode: mode,
            read_capacity,
            write_capacity,
            created,
            id,
        })
    }

    /// `UpdateTable`'s billing mode and throughput, applied to a copy.
    pub fn updated(&self, input: &Input) -> Result<TableDef, AwsError> {
        for unsupported in ["GlobalSecondaryIndexUpdates", "ReplicaUpdates"] {
            if input.get(unsupported).is_some() {
                return Err(validation(format!(
                    "bellows does not implement {unsupported}"
                )));
            }
        }
        let mut t = self.clone();
        let mode = billing_mode(input)?;
        if mode.is_none() && input.get("ProvisionedThroughput").is_none() {
            return Err(validation(
                "At least one of ProvisionedThroughput, BillingMode, UpdateStreamEnabled, GlobalSecondaryIndexUpdates or SSESpecification or ReplicaUpdates is required",
            ));
        }
        let mode = mode.unwrap_or_else(|| self.billing_mode.clone());
        if mode == "PROVISIONED" && input.get("ProvisionedThroughput").is_none() {
            if self.billing_mode != "PROVISIONED" {
                capacity(input, &mode)?;
            }
        } else {
            let (r, w) = capacity(input, &mode)?;
            t.read_capacity = r;
            t.write_capacity = w;
        }
        t.billing_mode = mode;
        Ok(t)
    }

    pub fn arn(&self, region: &str) -> String {
        format!("arn:aws:dynamodb:{region}:{ACCOUNT}:table/{}", self.name)
    }

    /// `TableDescription`.
    pub fn describe(&self, region: &str, status: &str, items: i64, bytes: i64) -> Value {
        let key = |k: &KeyAttr, kind: &str| {
            Value::object()
                .with("AttributeName", k.name.as_str())
                .with("KeyType", kind)
        };
        let def = |k: &KeyAttr| {
            Value::object()
                .with("AttributeName", k.name.as_str())
                .with("AttributeType", k.scalar.name())
        };
        let mut keys = vec![key(&self.hash, "HASH")];
        let mut defs = vec![def(&self.hash)];
        if let Some(r) = &self.range {
            keys.push(key(r, "RANGE"));
            defs.push(def(r));
        }
        let mut out = Value::object()
            .with("AttributeDefinitions", Value::List(defs))
            .with("TableName", self.name.as_str())
            .with("KeySchema", Value::List(keys))
            .with("TableStatus", status)
            .with("CreationDateTime", Value::Time(self.created))
            .with(
                "ProvisionedThroughput",
                Value::object()
                    .with("NumberOfDecreasesToday", 0i64)
                    .with("ReadCapacityUnits", self.read_capacity)
                    .with("WriteCapacityUnits", self.write_capacity),
            )
            .with("TableSizeBytes", bytes)
            .with("ItemCount", items)
            .with("TableArn", self.arn(region))
            .with("TableId", self.id.as_str())
            .with("DeletionProtectionEnabled", false);
        if self.billing_mode == "PAY_PER_REQUEST" {
            out.set(
                "BillingModeSummary",
                Value::object().with("BillingMode", "PAY_PER_REQUEST").with(
                    "LastUpdateToPayPerRequestDateTime",
                    Value::Time(self.created),
                ),
            );
        }
        out
    }

    fn key_value<'i>(
        &self,
        item: &'i Item,
        k: &KeyAttr,
        in_item: bool,
    ) -> Result<&'i Attr, String> {
        let v = item.get(&k.name).ok_or_else(|| {
            if in_item {
                format!(
                    "One or more parameter values were invalid: Missing the key {} in the item",
                    k.name
                )
            } else {
                "The provided key element does not match the schema".to_owned()
            }
        })?;
        if v.scalar() != Some(k.scalar) {
            return Err(if in_item {
                format!(
                    "One or more parameter values were invalid: Type mismatch for key {} expected: {} actual: {}",
                    k.name,
                    k.scalar.name(),
                    v.type_name()
                )
            } else {
                "The provided key element does not match the schema".to_owned()
            });
        }
        let empty = match v {
            Attr::S(s) => s.is_empty(),
            Attr::B(b) => b.is_empty(),
            _ => false,
        };
        if empty {
            return Err(format!(
                "One or more parameter values are not valid. The AttributeValue for a key attribute cannot contain an empty {} value. Key: {}",
                if k.scalar == Scalar::S {
                    "string"
                } else {
                    "binary"
                },
                k.name
            ));
        }
        Ok(v)
    }

    /// The stored key of an item (`PutItem`): its partition and sort key bytes.
    pub fn item_key(&self, item: &Item) -> Result<(Vec<u8>, Vec<u8>), String> {
        let h = self.key_value(item, &self.hash, true)?.key_bytes();
        let r = match &self.range {
            Some(r) => self.key_value(item, r, true)?.key_bytes(),
            None => Vec::new(),
        };
        Ok((h, r))
    }

    /// The stored key of a `Key` parameter, which must name the key attributes and
    /// nothing else.
    pub fn key(&self, key: &Item) -> Result<(Vec<u8>, Vec<u8>), String> {
        let want = 1 + usize::from(self.range.is_some());
        if key.len() != want {
            return Err("The provided key element does not match the schema".to_owned());
        }
        let h = self.key_value(key, &self.hash, false)?.key_bytes();
        let r = match &self.range {
            Some(r) => self.key_value(key, r, false)?.key_bytes(),
            None => Vec::new(),
        };
        Ok((h, r))
    }

    /// The key attributes of an item (a `LastEvaluatedKey`).
    pub fn key_of(&self, item: &Item) -> Item {
        let mut out = Item::new();
        for k in std::iter::once(&self.hash).chain(self.range.as_ref()) {
            if let Some(v) = item.get(&k.name) {
                out.insert(k.name.clone(), v.clone());
            }
        }
        out
    }

    pub fn is_key(&self, name: &str) -> bool {
        self.hash.name == name || self.range.as_ref().is_some_and(|r| r.name == name)
    }

    /// A `KeyConditionExpression` as the partition it reads and the sort key range.
    pub fn key_condition(&self, cond: &Cond) -> Result<KeyCondition, String> {
        let mut terms = Vec::new();
        flatten(cond, &mut terms)?;
        let unsupported = || "Query key condition not supported".to_owned();
        let mut hash = None;
        let mut range = None;
        let key_name = |o: &Operand| match o {
            Operand::Path(p) => match &p.0[..] {
                [Step::Key(k)] => Some(k.clone()),
                _ => None,
            },
            _ => None,
        };
        let value = |o: &Operand| match o {
            Operand::Value(v) => Some(v.clone()),
            _ => None,
        };
        for term in terms {
            let (name, rc) = match term {
                Cond::Cmp(a, op, b) => {
                    let (name, v, op) = match (key_name(a), value(b), key_name(b), value(a)) {
                        (Some(n), Some(v), _, _) => (n, v, *op),
                        (_, _, Some(n), Some(v)) => (n, v, flip(*op)),
                        _ => return Err(unsupported()),
                    };
                    if op == Cmp::Ne {
                        return Err(unsupported());
                    }
                    (name, RangeCond::Cmp(op, v))
                }
                Cond::Between(a, lo, hi) => match (key_name(a), value(lo), value(hi)) {
                    (Some(n), Some(lo), Some(hi)) => {
                        if lo.compare(&hi) == Some(Ordering::Greater) {
                            return Err(format!(
                                "Invalid KeyConditionExpression: The BETWEEN operator requires upper bound to be greater than or equal to lower bound; lower bound operand: AttributeValue: {{{}:{}}}, upper bound operand: AttributeValue: {{{}:{}}}",
                                lo.type_name(),
                                plain(&lo),
                                hi.type_name(),
                                plain(&hi)
                            ));
                        }
                        (n, RangeCond::Between(lo, hi))
                    }
                    _ => return Err(unsupported()),
                },
                Cond::BeginsWith(a, p) => match (key_name(a), value(p)) {
                    (Some(n), Some(p)) => (n, RangeCond::BeginsWith(p)),
                    _ => return Err(unsupported()),
                },
                _ => return Err(unsupported()),
            };
            if name == self.hash.name {
                let RangeCond::Cmp(Cmp::Eq, v) = rc else {
                    return Err(unsupported());
                };
                if hash.is_some() {
                    return Err(unsupported());
                }
                if v.scalar() != Some(self.hash.scalar) {
                    return Err("One or more parameter values were invalid: Condition parameter type does not match schema type".to_owned());
                }
                hash = Some(v);
            } else if self.range.as_ref().is_some_and(|r| r.name == name) {
                let r = self.range.as_ref().map(|r| r.scalar);
                let ok = match &rc {
                    RangeCond::Cmp(_, v) => v.scalar() == r,
                    RangeCond::Between(a, b) => a.scalar() == r && b.scalar() == r,
                    RangeCond::BeginsWith(v) => {
                        if r == Some(Scalar::N) {
                            return Err(format!(
                                "Invalid KeyConditionExpression: Incorrect operand type for operator or function; operator or function: begins_with, operand type: {}",
                                v.type_name()
                            ));
                        }
                        v.scalar() == r
                    }
                };
                if !ok {
                    return Err("One or more parameter values were invalid: Condition parameter type does not match schema type".to_owned());
                }
                if range.is_some() {
                    return Err(unsupported());
                }
                range = Some(rc);
            } else {
                return Err(format!(
                    "Query condition missed key schema element: {}",
                    if hash.is_none() {
                        &self.hash.name
                    } else {
                        &name
                    }
                ));
            }
        }
        let hash = hash.ok_or_else(|| {
            format!(
                "Query condition missed key schema element: {}",
                self.hash.name
            )
        })?;
        Ok(KeyCondition {
            partition: hash.key_bytes(),
            range,
        })
    }

    /// The sort key's order between two items of a partition.
    pub fn range_order(&self, a: &Item, b: &Item) -> Ordering {
        match &self.range {
            None => Ordering::Equal,
            Some(r) => match (a.get(&r.name), b.get(&r.name)) {
                (Some(x), Some(y)) => x.compare(y).unwrap_or(Ordering::Equal),
                _ => Ordering::Equal,
            },
        }
    }
}

fn plain(a: &Attr) -> String {
    match a {
        Attr::S(s) => s.clone(),
        Attr::N(n) => n.to_string(),
        other => other.type_name().to_owned(),
    }
}

fn flip(op: Cmp) -> Cmp {
    match op {
        Cmp::Lt => Cmp::Gt,
        Cmp::Le => Cmp::Ge,
        Cmp::Gt => Cmp::Lt,
        Cmp::Ge => Cmp::Le,
        other => other,
    }
}

fn flatten<'c>(c: &'c Cond, out: &mut Vec<&'c Cond>) -> Result<(), String> {
    match c {
        Cond::And(a, b) => {
            flatten(a, out)?;
            flatten(b, out)
        }
        Cond::Or(..) | Cond::Not(..) => Err(format!(
            "Invalid operator used in KeyConditionExpression: {}",
            if matches!(c, Cond::Or(..)) {
                "OR"
            } else {
                "NOT"
            }
        )),
        other => {
            out.push(other);
            Ok(())
        }
    }
}

/// What a query reads: one partition and, optionally, a sort key range.
#[derive(Debug, Clone, PartialEq)]
pub struct KeyCondition {
    pub partition: Vec<u8>,
    pub range: Option<RangeCond>,
}

/// A condition on the sort key.
#[derive(Debug, Clone, PartialEq)]
pub enum RangeCond {
    Cmp(Cmp, Attr),
    Between(Attr, Attr),
    BeginsWith(Attr),
}

impl RangeCond {
    pub fn matches(&self, v: &Attr) -> bool {
        match self {
            RangeCond::Cmp(op, x) => match v.compare(x) {
                None => false,
                Some(o) => match op {
                    Cmp::Eq => o == Ordering::Equal,
                    Cmp::Lt => o == Ordering::Less,
                    Cmp::Le => o != Ordering::Greater,
                    Cmp::Gt => o == Ordering::Greater,
                    Cmp::Ge => o != Ordering::Less,
                    Cmp::Ne => o != Ordering::Equal,
                },
            },
            RangeCond::Between(lo, hi) => {
                v.compare(lo).is_some_and(|o| o != Ordering::Less)
                    && v.compare(hi).is_some_and(|o| o != Ordering::Greater)
            }
            RangeCond::BeginsWith(p) => match (v, p) {
                (Attr::S(s), Attr::S(p)) => s.starts_with(p.as_str()),
                (Attr::B(s), Attr::B(p)) => s.starts_with(p),
                _ => false,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::dynamodb::attr::item_from_value;
    use crate::dynamodb::expr::{Scope, parse_condition};
    use crate::json;

    fn input(j: &str) -> Input {
        Input::new(
            json::decode(j.as_bytes()).unwrap(),
            "ValidationException",
            "ValidationException",
        )
    }

    fn orders() -> TableDef {
        TableDef::from_create(
            &input(
                r#"{"TableName":"orders","BillingMode":"PAY_PER_REQUEST",
                "AttributeDefinitions":[{"AttributeName":"pk","AttributeType":"S"},{"AttributeName":"sk","AttributeType":"N"}],
                "KeySchema":[{"AttributeName":"pk","KeyType":"HASH"},{"AttributeName":"sk","KeyType":"RANGE"}]}"#,
            ),
            0.0,
            "id".into(),
        )
        .unwrap()
    }

    fn key_condition(text: &str) -> Result<KeyCondition, String> {
        let names = BTreeMap::new();
        let values = item_from_value(
            &json::decode(br#"{":p":{"S":"a"},":n":{"N":"1"},":m":{"N":"5"},":s":{"S":"x"}}"#)
                .unwrap(),
        )
        .unwrap();
        let mut scope = Scope::new(&names, &values);
        let c = parse_condition("KeyConditionExpression", text, &mut scope)?;
        orders().key_condition(&c)
    }

    #[test]
    fn create_table_checks_its_schema() {
        let def = orders();
        assert_eq!(def.hash.name, "pk");
        assert_eq!(def.range.as_ref().unwrap().scalar, Scalar::N);
        for (j, want) in [
            (
                r#"{"TableName":"bad!","BillingMode":"PAY_PER_REQUEST","AttributeDefinitions":[{"AttributeName":"a","AttributeType":"S"}],"KeySchema":[{"AttributeName":"a","KeyType":"HASH"}]}"#,
                "regular expression",
            ),
            (
                r#"{"TableName":"tt","BillingMode":"PAY_PER_REQUEST","AttributeDefinitions":[{"AttributeName":"a","AttributeType":"S"}],"KeySchema":[{"AttributeName":"a","KeyType":"HASH"}]}"#,
                "length greater than or equal to 3",
            ),
            (
                r#"{"TableName":"ttt","BillingMode":"PAY_PER_REQUEST","AttributeDefinitions":[{"AttributeName":"a","AttributeType":"X"}],"KeySchema":[{"AttributeName":"a","KeyType":"HASH"}]}"#,
                "[B, N, S]",
            ),
            (
                r#"{"TableName":"ttt","BillingMode":"PAY_PER_REQUEST","AttributeDefinitions":[{"AttributeName":"a","AttributeType":"S"}],"KeySchema":[{"AttributeName":"b","KeyType":"HASH"}]}"#,
                "not defined in AttributeDefinitions",
            ),
            (
                r#"{"TableName":"ttt","BillingMode":"PAY_PER_REQUEST","AttributeDefinitions":[{"AttributeName":"a","AttributeType":"S"}],"KeySchema":[{"AttributeName":"a","KeyType":"RANGE"}]}"#,
                "not a HASH key",
            ),
            (
                r#"{"TableName":"ttt","AttributeDefinitions":[{"AttributeName":"a","AttributeType":"S"}],"KeySchema":[{"AttributeName":"a","KeyType":"HASH"}]}"#,
                "must both be specified",
            ),
            (
                r#"{"TableName":"ttt","BillingMode":"PAY_PER_REQUEST","ProvisionedThroughput":{"ReadCapacityUnits":1,"WriteCapacityUnits":1},"AttributeDefinitions":[{"AttributeName":"a","AttributeType":"S"}],"KeySchema":[{"AttributeName":"a","KeyType":"HASH"}]}"#,
                "can be specified when BillingMode is PAY_PER_REQUEST",
            ),
        ] {
            let e = TableDef::from_create(&input(j), 0.0, "id".into()).unwrap_err();
            assert_eq!(e.code, "ValidationException");
            assert!(e.message.contains(want), "{j}: {}", e.message);
        }
    }

    #[test]
    fn key_conditions_read_one_partition_and_a_sort_key_range() {
        let kc = key_condition("pk = :p AND sk BETWEEN :n AND :m").unwrap();
        assert_eq!(kc.partition, Attr::S("a".into()).key_bytes());
        let range = kc.range.unwrap();
        let n = |s: &str| Attr::N(crate::dynamodb::number::Decimal::parse(s).unwrap());
        assert!(range.matches(&n("1")) && range.matches(&n("5")) && !range.matches(&n("5.1")));
        // Written the other way round, the comparison flips.
        let kc = key_condition(":m > sk AND :p = pk").unwrap();
        assert!(kc.range.unwrap().matches(&n("4.9")));
        for (text, want) in [
            ("sk = :n", "missed key schema element: pk"),
            (
                "pk = :p OR sk = :n",
                "Invalid operator used in KeyConditionExpression: OR",
            ),
            ("pk < :p", "Query key condition not supported"),
            (
                "pk = :n",
                "Condition parameter type does not match schema type",
            ),
            ("pk = :p AND other = :n", "missed key schema element: other"),
            ("pk = :p AND begins_with(sk, :s)", "begins_with"),
            (
                "pk = :p AND sk BETWEEN :m AND :n",
                "BETWEEN operator requires upper bound",
            ),
            ("pk = :p AND sk <> :n", "Query key condition not supported"),
        ] {
            let e = key_condition(text).unwrap_err();
            assert!(e.contains(want), "{text}: {e}");
        }
    }

    #[test]
    fn keys_must_match_the_schema() {
        let def = orders();
        let item = |j: &str| item_from_value(&json::decode(j.as_bytes()).unwrap()).unwrap();
        assert!(def.key(&item(r#"{"pk":{"S":"a"},"sk":{"N":"1"}}"#)).is_ok());
        for (j, want) in [
            (r#"{"pk":{"S":"a"}}"#, "does not match the schema"),
            (
                r#"{"pk":{"S":"a"},"sk":{"N":"1"},"x":{"S":"y"}}"#,
                "does not match the schema",
            ),
            (
                r#"{"pk":{"N":"1"},"sk":{"N":"1"}}"#,
                "does not match the schema",
            ),
            (
                r#"{"pk":{"S":""},"sk":{"N":"1"}}"#,
                "empty string value. Key: pk",
            ),
        ] {
            assert!(def.key(&item(j)).unwrap_err().contains(want), "{j}");
        }
        assert!(
            def.item_key(&item(r#"{"pk":{"S":"a"}}"#))
                .unwrap_err()
                .contains("Missing the key sk in the item")
        );
    }
}
