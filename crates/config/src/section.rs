//! The `section!` macro: one table per YAML block giving each key its type and Loki's
//! default, plus the keys Fenrir accepts for compatibility but does not use.

/// A configuration block that can report which of its accepted-but-unused keys are set.
pub(crate) trait Section {
    /// Pushes `prefix` + key for every key that is set but has no effect in Fenrir.
    fn collect_ignored(&self, prefix: &str, out: &mut Vec<String>);
}

impl<T: Section> Section for Vec<T> {
    fn collect_ignored(&self, prefix: &str, out: &mut Vec<String>) {
        let prefix = prefix.strip_suffix('.').unwrap_or(prefix);
        for (index, item) in self.iter().enumerate() {
            item.collect_ignored(&format!("{prefix}[{index}]."), out);
        }
    }
}

impl<T: Section> Section for Option<T> {
    fn collect_ignored(&self, prefix: &str, out: &mut Vec<String>) {
        if let Some(inner) = self {
            inner.collect_ignored(prefix, out);
        }
    }
}

/// Declares a config block: a serde struct with `default` and `deny_unknown_fields`, its
/// `Default` (Loki's defaults, from the `= value` after each field), and its
/// [`Section`] impl. `nested` lists typed fields that are themselves sections; `ignored`
/// lists Loki keys accepted with any value and reported by `Config::ignored_keys`.
macro_rules! section {
    (
        $(#[$meta:meta])*
        pub struct $name:ident {
            $(
                $(#[$field_meta:meta])*
                $field:ident : $ty:ty = $default:expr,
            )*
        }
        nested [$($nested:ident),* $(,)?]
        ignored [$($ignored:ident),* $(,)?]
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
        #[serde(default, deny_unknown_fields)]
        pub struct $name {
            $(
                $(#[$field_meta])*
                pub $field: $ty,
            )*
            $(
                #[serde(skip_serializing_if = "Option::is_none")]
                pub(crate) $ignored: Option<serde_yaml_ng::Value>,
            )*
        }

        impl Default for $name {
            fn default() -> Self {
                Self {
                    $( $field: $default, )*
                    $( $ignored: None, )*
                }
            }
        }

        impl $crate::section::Section for $name {
            #[allow(unused_variables)]
            fn collect_ignored(&self, prefix: &str, out: &mut Vec<String>) {
                $(
                    if self.$ignored.is_some() {
                        out.push(format!("{prefix}{}", stringify!($ignored)));
                    }
                )*
                $(
                    $crate::section::Section::collect_ignored(
                        &self.$nested,
                        &format!("{prefix}{}.", stringify!($nested)),
                        out,
                    );
                )*
            }
        }
    };
}

pub(crate) use section;
