//! The text labels of the domain's unit-only enums: what read models store, CHECK constraints
//! allow, query parameters accept and APIs show. They are the enums' serde names (a test
//! keeps the two equal), written once here per enum.

/// Implements `ALL`, `as_str` and `parse` for a unit-only enum from its labels.
macro_rules! labels {
    ($ty:ty { $($variant:ident => $label:literal),+ $(,)? }) => {
        impl $ty {
            /// Every value, in declaration order.
            pub const ALL: &'static [$ty] = &[$(Self::$variant),+];

            /// The stable label (its serde name).
            pub const fn as_str(self) -> &'static str {
                match self {
                    $(Self::$variant => $label),+
                }
            }

            /// The value a label names.
            pub fn parse(label: &str) -> Option<Self> {
                Self::ALL.iter().copied().find(|v| v.as_str() == label)
            }

            /// Every label, in declaration order.
            pub fn labels() -> Vec<&'static str> {
                Self::ALL.iter().map(|v| v.as_str()).collect()
            }
        }
    };
}

pub(crate) use labels;

#[cfg(test)]
mod tests {
    use crate::access::{Permission, Role};
    use crate::booking::{BookingStatus, Channel, Party};
    use crate::conversation::{DeliveryStatus, Direction};
    use crate::plan::Plan;
    use crate::tenant::TenantStatus;

    fn serde_name<T: serde::Serialize>(value: T) -> String {
        serde_json::to_value(value)
            .unwrap()
            .as_str()
            .unwrap()
            .to_owned()
    }

    macro_rules! agree {
        ($($ty:ty),*) => {$(
            for value in <$ty>::ALL {
                assert_eq!(value.as_str(), serde_name(value), "{value:?}");
                assert_eq!(<$ty>::parse(value.as_str()), Some(*value));
            }
            assert_eq!(<$ty>::parse("no such label"), None);
        )*};
    }

    #[test]
    fn labels_are_the_serde_names_and_parse_back() {
        agree!(
            BookingStatus,
            Channel,
            Party,
            Role,
            Permission,
            Plan,
            TenantStatus,
            DeliveryStatus,
            Direction
        );
    }
}
