//! The diff at the heart of a poll: the objects fetched now against the
//! cache, as hermes' events, and the form objects take in the cache.

use std::collections::{BTreeMap, BTreeSet};

use hermes_event::{Category, Event, EventType, Value};
use indexmap::IndexMap;

use super::cache::{Cached, Objects, digest};
use super::mapping::Row;
use super::model::DataType;
use super::order;

/// The current objects of each type, by key, sorted by primary key.
pub(super) type Current = Vec<IndexMap<String, (Value, Row)>>;

/// A change to apply to the cache once its event is stored.
#[derive(Clone)]
pub(super) enum Change {
    Put(usize, String, Cached),
    Remove(usize, String),
}

/// The base events of a poll in hermes' order (within a type, `added` and
/// `removed` sorted by primary key as `current` is), each with its cache change,
/// and the cache changes no client needs to hear of: `current` (the objects
/// of each of `types`, fetched now) against `cache` (what clients know).
/// The `held` keys of each type stay as clients know them (their data is
/// in error): they are not removed.
pub(super) fn diff(
    types: &[DataType],
    cache: &Objects,
    current: &Current,
    held: &[BTreeSet<String>],
) -> (Vec<(Event, Change)>, Vec<Change>) {
    let mut added = Vec::new();
    let mut modified = Vec::new();
    let mut removed = Vec::new();
    let mut silent = Vec::new();
    let empty = BTreeMap::new();
    for (t, (datatype, objects)) in types.iter().zip(current).enumerate() {
        let cached = cache.get(&datatype.name).unwrap_or(&empty);
        for (key, (pkey, attrs)) in objects {
            let now = cache_form(datatype, pkey.clone(), attrs.clone());
            let put = || Change::Put(t, key.clone(), now.clone());
            match cached.get(key) {
                None => {
                    let objattrs = Value::Object(sent(datatype, attrs));
                    let event =
                        object_event(Category::Base, EventType::Added, datatype, pkey, objattrs);
                    added.push((event, put()));
                }
                Some(before) if *before == now => {}
                Some(before) => match modification(datatype, &before.attrs, &now.attrs, attrs) {
                    Some(objattrs) => {
                        let event = object_event(
                            Category::Base,
                            EventType::Modified,
                            datatype,
                            pkey,
                            objattrs,
                        );
                        modified.push((event, put()));
                    }
                    None => silent.push(put()),
                },
            }
        }
    }
    for (t, datatype) in types.iter().enumerate().rev() {
        let Some(cached) = cache.get(&datatype.name) else {
            continue;
        };
        let mut gone: Vec<(&String, &Cached)> = cached
            .iter()
            .filter(|(key, _)| !current[t].contains_key(*key))
            .filter(|(key, _)| !held.get(t).is_some_and(|h| h.contains(*key)))
            .collect();
        gone.sort_by(|(_, a), (_, b)| order::compare(&a.pkey, &b.pkey));
        for (key, before) in gone {
            let event = object_event(
                Category::Base,
                EventType::Removed,
                datatype,
                &before.pkey,
                Value::empty_object(),
            );
            removed.push((event, Change::Remove(t, key.clone())));
        }
    }
    let mut events = added;
    events.extend(modified);
    events.extend(removed);
    (events, silent)
}

/// Sorts a type's objects by primary key, as hermes sorts them: the order
/// of `added` events and of an initsync sequence.
pub(super) fn sort(objects: &mut IndexMap<String, (Value, Row)>) {
    objects.sort_by(|_, (a, _), _, (b, _)| order::compare(a, b));
}

pub(super) fn object_event(
    category: Category,
    eventtype: EventType,
    datatype: &DataType,
    pkey: &Value,
    objattrs: Value,
) -> Event {
    Event::new(
        category,
        eventtype,
        Some(datatype.name.clone()),
        pkey.clone(),
        objattrs,
    )
}

/// The attributes clients receive, in mapping order.
pub(super) fn sent(datatype: &DataType, attrs: &Row) -> Row {
    attrs
        .iter()
        .filter(|(name, _)| !datatype.cacheonly.contains(name))
        .cloned()
        .collect()
}

/// The object as cached: secrets replaced by their digest.
pub(super) fn cache_form(datatype: &DataType, pkey: Value, mut attrs: Row) -> Cached {
    for (name, value) in &mut attrs {
        if datatype.secrets.contains(name) {
            *value = digest(value);
        }
    }
    Cached { pkey, attrs }
}

/// hermes' modified diff, `{"added": .., "modified": .., "removed": ..}` with
/// names sorted in each, over the attributes clients receive; none when
/// only cache-only attributes changed. Values come from `fresh` (secrets in
/// clear), comparisons from the cache forms.
fn modification(datatype: &DataType, before: &Row, now: &Row, fresh: &Row) -> Option<Value> {
    let visible = |row: &Row| -> BTreeMap<String, Value> {
        row.iter()
            .filter(|(name, _)| !datatype.cacheonly.contains(name))
            .cloned()
            .collect()
    };
    let (before, now) = (visible(before), visible(now));
    let value_of = |name: &str| {
        fresh
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
            .unwrap_or(Value::Null)
    };
    let names: BTreeSet<&String> = before.keys().chain(now.keys()).collect();
    let (mut added, mut modified, mut removed) = (Vec::new(), Vec::new(), Vec::new());
    for name in names {
        match (before.get(name), now.get(name)) {
            (None, Some(_)) => added.push((name.clone(), value_of(name))),
            (Some(_), None) => removed.push((name.clone(), Value::Null)),
            (Some(a), Some(b)) if a != b => modified.push((name.clone(), value_of(name))),
            _ => {}
        }
    }
    if added.is_empty() && modified.is_empty() && removed.is_empty() {
        return None;
    }
    Some(Value::Object(vec![
        ("added".into(), Value::Object(added)),
        ("modified".into(), Value::Object(modified)),
        ("removed".into(), Value::Object(removed)),
    ]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::config::ServerConfig;
    use crate::server::model::Model;

    /// Two types: groups, and users with a secret and a cache-only attribute.
    fn model() -> Model {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("server.yml");
        std::fs::write(
            &path,
            r#"
hermes:
  plugins:
    datasources:
      db: {type: sqlite, settings: {uri: db.sqlite}}
    messagebus:
      file-log: {settings: {}}
hermes-server:
  updateInterval: 1
  datamodel:
    SRVGroups:
      primarykeyattr: id
      foreignkeys: {}
      sources:
        db:
          fetch: {type: fetch, query: "SELECT 1"}
          attrsmapping: {id: gid, name: name}
    SRVUsers:
      primarykeyattr: id
      foreignkeys: {}
      sources:
        db:
          fetch: {type: fetch, query: "SELECT 1"}
          attrsmapping: {id: uid, login: login, phone: phone, password: password, seen: seen}
          secrets_attrs: [password]
          cacheonly_attrs: [seen]
"#,
        )
        .expect("write");
        let config = ServerConfig::read(&path).expect("config");
        Model::new(&config, dir.path()).expect("model")
    }

    fn row(pairs: &[(&str, Value)]) -> Row {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.clone()))
            .collect()
    }

    fn user(id: i64, login: &str, phone: Option<&str>, password: &str, seen: i64) -> Row {
        let mut attrs = vec![("id", Value::from(id)), ("login", Value::from(login))];
        if let Some(phone) = phone {
            attrs.push(("phone", Value::from(phone)));
        }
        attrs.push(("password", Value::from(password)));
        attrs.push(("seen", Value::from(seen)));
        row(&attrs)
    }

    fn group(id: i64, name: &str) -> Row {
        row(&[("id", Value::from(id)), ("name", Value::from(name))])
    }

    fn current(groups: Vec<Row>, users: Vec<Row>) -> Current {
        [groups, users]
            .into_iter()
            .map(|objects| {
                objects
                    .into_iter()
                    .map(|attrs| {
                        let pkey = attrs[0].1.clone();
                        (pkey.to_json_compact(), (pkey, attrs))
                    })
                    .collect::<IndexMap<_, _>>()
            })
            .map(|mut objects| {
                sort(&mut objects);
                objects
            })
            .collect()
    }

    /// The cache clients would hold after hearing of `current`.
    fn cached(model: &Model, current: &Current) -> Objects {
        model
            .types
            .iter()
            .zip(current)
            .map(|(t, objects)| {
                let by_key = objects
                    .iter()
                    .map(|(key, (pkey, attrs))| {
                        (key.clone(), cache_form(t, pkey.clone(), attrs.clone()))
                    })
                    .collect();
                (t.name.clone(), by_key)
            })
            .collect()
    }

    fn summary(events: &[(Event, Change)]) -> Vec<(EventType, String, String)> {
        events
            .iter()
            .map(|(e, _)| {
                (
                    e.eventtype,
                    e.objtype.clone().unwrap_or_default(),
                    e.objpkey.to_json_compact(),
                )
            })
            .collect()
    }

    #[test]
    fn an_empty_cache_hears_of_every_object_as_added_in_key_order() {
        let model = model();
        let now = current(
            vec![group(120, "c"), group(20, "b"), group(100, "a")],
            vec![user(1, "ada", None, "pw", 1)],
        );
        let (events, silent) = diff(&model.types, &Objects::new(), &now, &[]);
        assert!(silent.is_empty());
        assert_eq!(
            summary(&events),
            [
                (EventType::Added, "SRVGroups".into(), "20".into()),
                (EventType::Added, "SRVGroups".into(), "100".into()),
                (EventType::Added, "SRVGroups".into(), "120".into()),
                (EventType::Added, "SRVUsers".into(), "1".into()),
            ]
        );
        // Clients get the secret in clear and never the cache-only attribute.
        let sent = &events[3].0.objattrs;
        assert_eq!(sent.get("password"), Some(&Value::from("pw")));
        assert_eq!(sent.get("seen"), None);
        // The cache gets the digest, and the cache-only attribute.
        let Change::Put(_, _, cached) = &events[3].1 else {
            panic!("an added object is put in the cache");
        };
        assert_eq!(cached.attrs[2].1, digest(&Value::from("pw")));
        assert_eq!(cached.attrs[3].1, Value::from(1));
    }

    #[test]
    fn changes_come_added_then_modified_then_removed_in_reverse_type_order() {
        let model = model();
        let before = current(
            vec![group(10, "a"), group(20, "b")],
            vec![
                user(1, "ada", Some("555"), "pw", 1),
                user(2, "alan", None, "pw", 1),
            ],
        );
        let cache = cached(&model, &before);
        let (events, silent) = diff(&model.types, &cache, &before, &[]);
        assert!(events.is_empty() && silent.is_empty(), "nothing changed");

        let now = current(
            vec![group(10, "a"), group(30, "c")],
            vec![
                // login changed, phone gone, secret changed: one modified.
                user(1, "ada.l", None, "new", 1),
                // Only the cache-only attribute changed: no event.
                user(2, "alan", None, "pw", 9),
            ],
        );
        let (events, silent) = diff(&model.types, &cache, &now, &[]);
        assert_eq!(
            summary(&events),
            [
                (EventType::Added, "SRVGroups".into(), "30".into()),
                (EventType::Modified, "SRVUsers".into(), "1".into()),
                (EventType::Removed, "SRVGroups".into(), "20".into()),
            ]
        );
        assert_eq!(
            events[1].0.objattrs.to_json_compact(),
            r#"{"added":{},"modified":{"login":"ada.l","password":"new"},"removed":{"phone":null}}"#
        );
        assert_eq!(events[2].0.objattrs, Value::empty_object());
        assert!(matches!(&events[2].1, Change::Remove(0, key) if key == "20"));
        assert!(
            matches!(&silent[..], [Change::Put(1, key, cached)] if key == "2" && cached.attrs.last().map(|a| &a.1) == Some(&Value::from(9))),
            "the cache-only change is cached without an event"
        );
    }

    #[test]
    fn removals_of_later_types_come_first_each_type_in_key_order() {
        let model = model();
        let before = current(
            vec![group(120, "c"), group(30, "a"), group(31, "b")],
            vec![user(1, "ada", None, "pw", 1)],
        );
        let cache = cached(&model, &before);
        let (events, _) = diff(&model.types, &cache, &current(vec![], vec![]), &[]);
        assert_eq!(
            summary(&events),
            [
                (EventType::Removed, "SRVUsers".into(), "1".into()),
                (EventType::Removed, "SRVGroups".into(), "30".into()),
                (EventType::Removed, "SRVGroups".into(), "31".into()),
                (EventType::Removed, "SRVGroups".into(), "120".into()),
            ]
        );
    }
}
