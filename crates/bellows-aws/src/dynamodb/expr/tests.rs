use super::*;
use crate::dynamodb::attr::item_from_value;
use crate::json;

fn item(j: &str) -> Item {
    item_from_value(&json::decode(j.as_bytes()).unwrap()).unwrap()
}

fn names(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(a, b)| ((*a).to_owned(), (*b).to_owned()))
        .collect()
}

/// Evaluates a condition on an item, with `:v` values given as an item's JSON.
fn holds(cond: &str, on: &str, values: &str) -> Result<bool, String> {
    let n = names(&[("#n", "name")]);
    let v = item(values);
    let mut scope = Scope::new(&n, &v);
    let c = parse_condition("ConditionExpression", cond, &mut scope)?;
    eval(&c, &item(on))
}

const DOC: &str = r##"{"id":{"S":"a1"},"name":{"S":"Ada"},"age":{"N":"36"},"tags":{"SS":["x","y"]},
    "scores":{"L":[{"N":"1"},{"N":"2"}]},"addr":{"M":{"city":{"S":"Paris"}}},"flag":{"BOOL":true}}"##;

#[test]
fn conditions_evaluate_as_dynamodb_documents() {
    let v = r#"{":a":{"N":"36"},":b":{"N":"40"},":s":{"S":"Ad"},":x":{"S":"x"},":t":{"S":"SS"},":one":{"N":"1"},":p":{"S":"Paris"},":z":{"N":"2"}}"#;
    for (cond, want) in [
        ("age = :a", true),
        ("age <> :a", false),
        ("age < :b AND age >= :a", true),
        ("age BETWEEN :a AND :b", true),
        ("age IN (:b, :a)", true),
        (
            "attribute_exists(#n) AND attribute_not_exists(missing)",
            true,
        ),
        ("begins_with(#n, :s)", true),
        ("contains(tags, :x)", true),
        ("contains(scores, :one)", true),
        ("size(tags) = :z AND size(#n) > :z", true),
        ("attribute_type(tags, :t)", true),
        ("addr.city = :p", true),
        ("scores[1] = :z", true),
        (
            "NOT age = :a OR (begins_with(#n, :s) AND flag = flag)",
            true,
        ),
        ("missing = :a", false),
        // A missing attribute is not equal to anything, even another missing one.
        ("missing <> :a", true),
        ("missing <> other", true),
        ("missing = other", false),
        ("missing < :a", false),
        ("age = :s", false),
        ("age < :s", false),
        ("attribute_exists(addr.zip)", false),
        ("NOT (age = :a) AND attribute_exists(id)", false),
    ] {
        let mut v2 = item(v);
        v2.retain(|k, _| cond.contains(k.as_str()));
        let values = String::from_utf8(json::encode(&crate::dynamodb::item_value(&v2))).unwrap();
        assert_eq!(holds(cond, DOC, &values), Ok(want), "{cond}");
    }
}

#[test]
fn and_binds_tighter_than_or() {
    let v = r#"{":a":{"N":"1"},":b":{"N":"2"}}"#;
    // true OR (false AND false) is true; (true OR false) AND false would be false.
    assert_eq!(
        holds("x = :a OR x = :b AND x = :b", r#"{"x":{"N":"1"}}"#, v),
        Ok(true)
    );
}

#[test]
fn undefined_and_malformed_expressions_are_refused() {
    let e = holds("#m = :a", "{}", r#"{":a":{"N":"1"}}"#).unwrap_err();
    assert!(e.contains("attribute name: #m"), "{e}");
    let e = holds("x = :nope", "{}", r#"{":a":{"N":"1"}}"#).unwrap_err();
    assert!(e.contains("attribute value: :nope"), "{e}");
    for bad in [
        "x =",
        "= :a",
        "x = :a AND",
        "(x = :a",
        "x == :a",
        "frob(x)",
        "x = :a :a",
    ] {
        let e = holds(bad, "{}", r#"{":a":{"N":"1"}}"#).unwrap_err();
        assert!(e.starts_with("Invalid ConditionExpression:"), "{bad}: {e}");
    }
    let e = holds("", "{}", "{}").unwrap_err();
    assert!(e.contains("can not be empty"), "{e}");
}

#[test]
fn unused_names_and_values_are_reported() {
    let n = names(&[("#a", "a"), ("#b", "b")]);
    let v = item(r#"{":x":{"N":"1"}}"#);
    let mut scope = Scope::new(&n, &v);
    parse_condition("ConditionExpression", "#a = :x", &mut scope).unwrap();
    let e = scope.check_all_used().unwrap_err();
    assert_eq!(
        e,
        "Value provided in ExpressionAttributeNames unused in expressions: keys: {#b}"
    );
}

fn update(expr: &str, on: &str, values: &str) -> Result<Item, String> {
    let n = names(&[("#c", "count")]);
    let v = item(values);
    let mut scope = Scope::new(&n, &v);
    let actions = parse_update(expr, &mut scope)?;
    apply(&actions, &item(on))
}

fn show(i: &Item) -> String {
    String::from_utf8(json::encode(&crate::dynamodb::item_value(i))).unwrap()
}

#[test]
fn updates_set_remove_add_delete() {
    let on = r#"{"id":{"S":"k"},"n":{"N":"0.1"},"l":{"L":[{"S":"a"},{"S":"b"},{"S":"c"}]},"s":{"SS":["a","b"]},"m":{"M":{"x":{"N":"1"}}},"gone":{"S":"bye"}}"#;
    let values = r#"{":p":{"N":"0.2"},":l":{"L":[{"S":"d"}]},":one":{"N":"1"},":s":{"SS":["c"]},":d":{"SS":["a"]},":v":{"S":"new"}}"#;
    let out = update(
        "SET n = n + :p, l = list_append(l, :l), m.y = :one, #c = if_not_exists(#c, :one), fresh = if_not_exists(n, :v) REMOVE gone, l[0] ADD s :s, total :one DELETE s :d",
        on,
        values,
    );
    // DELETE and ADD on the same set overlap: DynamoDB refuses that.
    assert!(out.unwrap_err().contains("Two document paths overlap"));
    let out = update(
        "SET n = n + :p, m.y = :one, #c = if_not_exists(#c, :one), fresh = if_not_exists(n, :v), l[5] = :v REMOVE gone ADD s :s, total :one",
        on,
        r#"{":p":{"N":"0.2"},":one":{"N":"1"},":s":{"SS":["c"]},":v":{"S":"new"}}"#,
    )
    .unwrap();
    assert_eq!(
        show(&out),
        r#"{"count":{"N":"1"},"fresh":{"N":"0.1"},"id":{"S":"k"},"l":{"L":[{"S":"a"},{"S":"b"},{"S":"c"},{"S":"new"}]},"m":{"M":{"x":{"N":"1"},"y":{"N":"1"}}},"n":{"N":"0.3"},"s":{"SS":["a","b","c"]},"total":{"N":"1"}}"#
    );
    let out = update("REMOVE l SET l[1] = :v", on, r#"{":v":{"S":"z"}}"#);
    assert!(out.unwrap_err().contains("overlap"), "l and l[1] overlap");
    let out = update(
        "REMOVE l[0], l[2] DELETE s :d",
        on,
        r#"{":d":{"SS":["a","b"]}}"#,
    )
    .unwrap();
    assert_eq!(
        show(&out),
        r#"{"gone":{"S":"bye"},"id":{"S":"k"},"l":{"L":[{"S":"b"}]},"m":{"M":{"x":{"N":"1"}}},"n":{"N":"0.1"}}"#
    );
}

#[test]
fn update_type_errors_and_paths() {
    let on = r#"{"s":{"S":"x"},"n":{"N":"1"}}"#;
    let e = update("SET s = s + :one", on, r#"{":one":{"N":"1"}}"#).unwrap_err();
    assert!(e.contains("incorrect data type"), "{e}");
    let e = update("ADD s :v", on, r#"{":v":{"S":"a"}}"#).unwrap_err();
    assert!(e.contains("operator: ADD, operand type: STRING"), "{e}");
    let e = update("SET a.b = :one", on, r#"{":one":{"N":"1"}}"#).unwrap_err();
    assert!(
        e.contains("document path provided in the update expression is invalid"),
        "{e}"
    );
    let e = update("SET x = nothere", on, "{}").unwrap_err();
    assert!(e.contains("does not exist"), "{e}");
    let e = update("SET n = :one SET s = :one", on, r#"{":one":{"N":"1"}}"#).unwrap_err();
    assert!(e.contains("can only be used once"), "{e}");
    let e = update("SET n = n - :big", on, r#"{":big":{"N":"1e-40"}}"#).unwrap_err();
    assert!(e.contains("38 significant digits"), "{e}");
}

#[test]
fn projections_keep_nested_structure() {
    let n = names(&[("#n", "name")]);
    let v = Item::new();
    let mut scope = Scope::new(&n, &v);
    let paths = parse_projection("#n, addr.city, scores[1], nothere", &mut scope).unwrap();
    assert_eq!(
        show(&project(&item(DOC), &paths)),
        r#"{"addr":{"M":{"city":{"S":"Paris"}}},"name":{"S":"Ada"},"scores":{"L":[{"N":"2"}]}}"#
    );
}

/// Any text, and any sequence of the grammar's own tokens, parses or is refused with a
/// message: never a panic (expressions come straight off the wire).
fn parse_all(text: &str) {
    let n = names(&[("#n", "name"), ("#m", "m")]);
    let v = item(r#"{":a":{"N":"1"},":s":{"S":"x"},":l":{"L":[]},":ss":{"SS":["a"]}}"#);
    let doc = item(DOC);
    let mut scope = Scope::new(&n, &v);
    if let Ok(c) = parse_condition("ConditionExpression", text, &mut scope) {
        let _ = eval(&c, &doc);
    }
    if let Ok(actions) = parse_update(text, &mut scope) {
        let _ = apply(&actions, &doc);
    }
    if let Ok(paths) = parse_projection(text, &mut scope) {
        let _ = project(&doc, &paths);
    }
}

quickcheck::quickcheck! {
    fn arbitrary_text_never_panics(text: String) -> bool {
        parse_all(&text);
        true
    }

    fn token_soup_never_panics(picks: Vec<u8>) -> bool {
        const TOKENS: [&str; 36] = [
            "SET", "REMOVE", "ADD", "DELETE", "AND", "OR", "NOT", "BETWEEN", "IN", "(", ")",
            "[", "]", "0", "7", ",", ".", "=", "<>", "<", ">=", "+", "-", "#n", "#m", ":a",
            ":s", ":l", ":ss", "age", "scores", "addr", "size", "if_not_exists",
            "list_append", "attribute_exists",
        ];
        let text: Vec<&str> = picks.iter().map(|p| TOKENS[*p as usize % TOKENS.len()]).collect();
        parse_all(&text.join(" "));
        true
    }
}

#[test]
fn deep_or_long_expressions_are_refused_not_overflowed() {
    let deep = format!("{}x = :a{}", "(".repeat(2000), ")".repeat(2000));
    let e = holds(&deep, "{}", r#"{":a":{"N":"1"}}"#).unwrap_err();
    assert!(e.contains("nests more than"), "{e}");
    let nots = format!("{}x = :a", "NOT ".repeat(1000));
    let e = holds(&nots, "{}", r#"{":a":{"N":"1"}}"#).unwrap_err();
    assert!(
        e.contains("Expression size has exceeded") || e.contains("nests"),
        "{e}"
    );
    let appends = format!(
        "SET x = {}:l{}",
        "list_append(".repeat(200),
        ", :l)".repeat(200)
    );
    let e = update(&appends, "{}", r#"{":l":{"L":[]}}"#).unwrap_err();
    assert!(e.contains("nests more than"), "{e}");
    let long = format!("x = :a{}", " OR x = :a".repeat(500));
    let e = holds(&long, "{}", r#"{":a":{"N":"1"}}"#).unwrap_err();
    assert!(
        e.contains("Expression size has exceeded the maximum allowed size"),
        "{e}"
    );
}
