//! The raw bindings, generated once per world. Plugin code never names them:
//! it uses the types re-exported at the crate root and the [`export!`] macro.
//!
//! The imports (the capabilities, and the `types` every world uses) are generated in a
//! world of their own; the exports are the `bus` world's. Every component the
//! SDK builds therefore has the `bus` world's shape, and a plugin that provides
//! one role only says so in its metadata and refuses to build the other (the
//! host reads the roles from the metadata). One set of export bindings keeps
//! the generated export glue unique within a component.
//!
//! [`export!`]: crate::export

/// The shared imports and types.
pub mod imports {
    wit_bindgen::generate!({
        inline: "
            package hermes:guest-sdk;
            world imports {
                import hermes:bus/types@0.2.0;
                import hermes:bus/log@0.2.0;
                import hermes:bus/redis@0.2.0;
                import hermes:bus/sqlite@0.2.0;
                import hermes:bus/event-hubs@0.2.0;
            }
        ",
        path: "../wit",
        world: "hermes:guest-sdk/imports",
        runtime_path: "::hermes_guest::__wit_bindgen::rt",
        additional_derives: [PartialEq],
        generate_all,
    });
}

/// Bindings of the `bus` world: both roles.
pub mod bus {
    wit_bindgen::generate!({
        path: "../wit",
        world: "hermes:bus/bus@0.2.0",
        with: {
            "hermes:bus/types@0.2.0": crate::wit::imports::hermes::bus::types,
            "hermes:bus/log@0.2.0": crate::wit::imports::hermes::bus::log,
            "hermes:bus/redis@0.2.0": crate::wit::imports::hermes::bus::redis,
            "hermes:bus/sqlite@0.2.0": crate::wit::imports::hermes::bus::sqlite,
            "hermes:bus/event-hubs@0.2.0": crate::wit::imports::hermes::bus::event_hubs,
        },
        pub_export_macro: true,
        export_macro_name: "__export_bus_world",
        default_bindings_module: "::hermes_guest::wit::bus",
        runtime_path: "::hermes_guest::__wit_bindgen::rt",
    });
}
