//! MQTT topic filters and templates as configured: which topic levels carry
//! the asset and the channel.

/// Checks an MQTT subscription filter (`+` whole levels, `#` only last), and
/// a shared one's group and inner filter (`$share/<group>/<filter>`).
pub fn check_filter(filter: &str) -> Result<(), String> {
    if let Some(rest) = filter.strip_prefix("$share/") {
        let shared = rest.split_once('/').filter(|(group, inner)| {
            !group.is_empty() && !group.contains(['+', '#']) && !inner.is_empty()
        });
        let Some((_, inner)) = shared else {
            return Err(format!(
                "{filter:?} is not a valid shared subscription: write $share/<group>/<filter>, \
                 with a group name (no + or #) and a topic filter"
            ));
        };
        return check_filter(inner);
    }
    if filter.is_empty() || !rumqttc::valid_filter(filter) {
        return Err(format!(
            "{filter:?} is not a valid MQTT topic filter (use + for one level, # only at the end)"
        ));
    }
    Ok(())
}

/// The topic filter of a subscription filter: a shared subscription
/// (`$share/<group>/<filter>`, MQTT 5 and mosquitto's MQTT 3.1.1 extension)
/// delivers topics matching `<filter>`.
pub fn shared_topic_filter(filter: &str) -> &str {
    filter.strip_prefix("$share/").and_then(|rest| rest.split_once('/')).map_or(filter, |(_, f)| f)
}

#[derive(Debug, Clone, PartialEq)]
enum Segment {
    Literal(String),
    Asset,
    Channel,
    /// A named placeholder that matches any one level, e.g. `{site}`.
    Any,
}

/// A topic template such as `plant/{site}/{asset}/{channel}`.
#[derive(Debug, Clone, PartialEq)]
pub struct Template(Vec<Segment>);

impl Template {
    /// Parses a template; it must contain `{asset}` exactly once.
    pub fn parse(template: &str) -> Result<Self, String> {
        let segs: Vec<Segment> = template
            .split('/')
            .map(|s| match s {
                "{asset}" => Segment::Asset,
                "{channel}" => Segment::Channel,
                s if s.starts_with('{') && s.ends_with('}') && s.len() > 2 => Segment::Any,
                s => Segment::Literal(s.to_string()),
            })
            .collect();
        if segs.iter().filter(|s| **s == Segment::Asset).count() != 1 {
            return Err(format!(
                "{template:?} must contain {{asset}} exactly once as a whole \
                level, e.g. plant/{{site}}/{{asset}}/{{channel}}"
            ));
        }
        if segs.iter().filter(|s| **s == Segment::Channel).count() > 1 {
            return Err(format!("{template:?} may contain {{channel}} at most once"));
        }
        if segs.iter().any(|s| matches!(s, Segment::Literal(l) if l.contains(['{', '}', '+', '#'])))
        {
            return Err(format!(
                "{template:?}: placeholders must fill a whole level, and wildcards belong in the \
                    filter"
            ));
        }
        Ok(Self(segs))
    }

    /// Whether the template names the channel (otherwise the payload must).
    pub fn has_channel(&self) -> bool {
        self.0.contains(&Segment::Channel)
    }

    /// Extracts `(asset, channel)` from a topic, or `None` if it does not fit.
    pub fn capture<'t>(&self, topic: &'t str) -> Option<(&'t str, Option<&'t str>)> {
        let levels: Vec<&str> = topic.split('/').collect();
        if levels.len() != self.0.len() {
            return None;
        }
        let (mut asset, mut channel) = (None, None);
        for (seg, level) in self.0.iter().zip(levels) {
            match seg {
                Segment::Literal(l) if l != level => return None,
                Segment::Asset => asset = Some(level),
                Segment::Channel => channel = Some(level),
                _ => {}
            }
        }
        Some((asset?, channel))
    }
}

#[cfg(test)]
mod shared_tests {
    use super::{check_filter, shared_topic_filter};

    #[test]
    fn shared_subscriptions_match_their_topic_filter() {
        assert_eq!(shared_topic_filter("$share/hums/plant/+/+/+"), "plant/+/+/+");
        assert_eq!(shared_topic_filter("plant/#"), "plant/#");
        assert_eq!(shared_topic_filter("$share/g"), "$share/g");
        assert!(check_filter("$share/hums/plant/+/+").is_ok());
        for bad in
            ["$share/g", "$share/g/", "$share//plant/#", "$share/+/plant/#", "$share/g/a/#/b"]
        {
            assert!(check_filter(bad).is_err(), "{bad}");
        }
    }
}
