//! Topic filters and templates: which topics carry which asset and channel.

use crate::config::schema::{PayloadFormat, Subscription};
use crate::config::Plant;
use std::collections::HashMap;

/// Checks an MQTT subscription filter (`+` whole levels, `#` only last).
pub fn check_filter(filter: &str) -> Result<(), String> {
    if filter.is_empty() || !rumqttc::valid_filter(filter) {
        return Err(format!("{filter:?} is not a valid MQTT topic filter (use + for one level, # only at the end)"));
    }
    Ok(())
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
            return Err(format!("{template:?} must contain {{asset}} exactly once as a whole level, e.g. plant/{{site}}/{{asset}}/{{channel}}"));
        }
        if segs.iter().filter(|s| **s == Segment::Channel).count() > 1 {
            return Err(format!("{template:?} may contain {{channel}} at most once"));
        }
        if segs.iter().any(|s| matches!(s, Segment::Literal(l) if l.contains(['{', '}', '+', '#']))) {
            return Err(format!(
                "{template:?}: placeholders must fill a whole level, and wildcards belong in the filter"
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

/// Where a topic's readings go.
#[derive(Debug, Clone, PartialEq)]
pub struct Route<'a> {
    pub subscription: usize,
    pub asset: &'a str,
    /// `None` when the payload names its channels (`payload = "object"`).
    pub channel: Option<&'a str>,
}

/// Maps incoming topics to subscriptions, assets and channels.
#[derive(Debug)]
pub struct Router {
    subscriptions: Vec<(Subscription, Template)>,
    exact: HashMap<String, (String, String)>,
}

impl Router {
    /// Builds the router from validated subscriptions and the plant's exact topics.
    pub fn new(subscriptions: &[Subscription], plant: &Plant) -> Result<Self, String> {
        let subscriptions = subscriptions
            .iter()
            .map(|s| Template::parse(&s.template).map(|t| (s.clone(), t)))
            .collect::<Result<_, _>>()?;
        let mut exact = HashMap::new();
        for a in &plant.assets {
            for c in &a.channels {
                if let Some(t) = &c.topic {
                    exact.insert(t.clone(), (a.id.to_string(), c.name.to_string()));
                }
            }
        }
        Ok(Self { subscriptions, exact })
    }

    /// The filters to subscribe to.
    pub fn filters(&self) -> impl Iterator<Item = &str> {
        self.subscriptions.iter().map(|(s, _)| s.filter.as_str())
    }

    /// The subscription settings (payload format, pointers) of a route.
    pub fn subscription(&self, idx: usize) -> &Subscription {
        &self.subscriptions[idx].0
    }

    /// Routes a topic: an exact per-channel topic wins over templates.
    pub fn route<'a>(&'a self, topic: &'a str) -> Option<Route<'a>> {
        let first_match = self.subscriptions.iter().position(|(s, _)| rumqttc::matches(topic, &s.filter))?;
        if let Some((asset, channel)) = self.exact.get(topic) {
            return Some(Route { subscription: first_match, asset, channel: Some(channel) });
        }
        self.subscriptions.iter().enumerate().find_map(|(i, (s, t))| {
            if !rumqttc::matches(topic, &s.filter) {
                return None;
            }
            let (asset, channel) = t.capture(topic)?;
            if channel.is_none() && s.payload != PayloadFormat::Object {
                return None;
            }
            Some(Route { subscription: i, asset, channel })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn template_captures_asset_and_channel() {
        let t = Template::parse("plant/{site}/{asset}/{channel}").unwrap();
        assert_eq!(t.capture("plant/a/pump-01/vib_de"), Some(("pump-01", Some("vib_de"))));
        assert_eq!(t.capture("plant/a/pump-01"), None);
        assert_eq!(t.capture("other/a/pump-01/vib_de"), None);
        let multi = Template::parse("plant/{site}/{asset}/state").unwrap();
        assert_eq!(multi.capture("plant/a/ch-1/state"), Some(("ch-1", None)));
        assert_eq!(multi.capture("plant/a/ch-1/other"), None);
    }

    #[test]
    fn bad_templates_and_filters_are_refused() {
        assert!(Template::parse("plant/{site}/{channel}").is_err());
        assert!(Template::parse("plant/{asset}/{asset}").is_err());
        assert!(Template::parse("plant/x{asset}").is_err());
        assert!(check_filter("plant/#/x").is_err());
        assert!(check_filter("plant/+/+/#").is_ok());
    }
}
