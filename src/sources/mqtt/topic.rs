//! Routing: which subscription, asset and channel an incoming topic carries.

use crate::config::schema::{PayloadFormat, Subscription};
use crate::config::topic::{shared_topic_filter, Template};
use crate::pipeline::plant::Plant;
use std::collections::HashMap;

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
    /// Each subscription, its template, and the filter topics are matched
    /// against (a shared subscription's `$share/<group>/` taken off).
    subscriptions: Vec<(Subscription, Template, String)>,
    exact: HashMap<String, (String, String)>,
}

impl Router {
    /// Builds the router from validated subscriptions and the plant's exact topics.
    pub fn new(subscriptions: &[Subscription], plant: &Plant) -> Result<Self, String> {
        let subscriptions = subscriptions
            .iter()
            .map(|s| {
                let matching = shared_topic_filter(&s.filter).to_string();
                Template::parse(&s.template).map(|t| (s.clone(), t, matching))
            })
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
        self.subscriptions.iter().map(|(s, _, _)| s.filter.as_str())
    }

    /// The subscription settings (payload format, pointers) of a route.
    pub fn subscription(&self, idx: usize) -> &Subscription {
        &self.subscriptions[idx].0
    }

    /// Routes a topic: an exact per-channel topic wins over templates.
    pub fn route<'a>(&'a self, topic: &'a str) -> Option<Route<'a>> {
        let first_match =
            self.subscriptions.iter().position(|(_, _, f)| rumqttc::matches(topic, f))?;
        if let Some((asset, channel)) = self.exact.get(topic) {
            return Some(Route { subscription: first_match, asset, channel: Some(channel) });
        }
        self.subscriptions.iter().enumerate().find_map(|(i, (s, t, f))| {
            if !rumqttc::matches(topic, f) {
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
    use crate::config::topic::check_filter;

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
