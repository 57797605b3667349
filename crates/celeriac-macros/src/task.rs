//! Expansion of `#[task]`.

use proc_macro2::{Span, TokenStream};
use quote::{format_ident, quote, ToTokens};
use syn::parse::Parser;
use syn::{FnArg, GenericArgument, ItemFn, Lit, Pat, PathArguments, ReturnType, Type};

#[derive(Default)]
struct Options {
    name: Option<String>,
    bind: bool,
    queue: Option<String>,
    priority: Option<u8>,
    acks_late: Option<bool>,
    max_retries: Option<u32>,
    time_limit: Option<f64>,
    soft_time_limit: Option<f64>,
    ignore_result: Option<bool>,
    rate_limit: Option<String>,
    default_retry_delay: Option<f64>,
    retry_backoff: Option<f64>,
    retry_backoff_max: Option<f64>,
    retry_jitter: Option<bool>,
    autoretry_for: Vec<String>,
}

fn parse_options(attr: TokenStream) -> syn::Result<Options> {
    let mut o = Options::default();
    let parser = syn::meta::parser(|meta| {
        let key = meta
            .path
            .get_ident()
            .map(|i| i.to_string())
            .unwrap_or_default();
        let flag = |meta: &syn::meta::ParseNestedMeta| -> syn::Result<bool> {
            if meta.input.peek(syn::Token![=]) {
                Ok(meta.value()?.parse::<syn::LitBool>()?.value)
            } else {
                Ok(true)
            }
        };
        match key.as_str() {
            "name" => o.name = Some(meta.value()?.parse::<syn::LitStr>()?.value()),
            "bind" => o.bind = flag(&meta)?,
            "queue" => o.queue = Some(meta.value()?.parse::<syn::LitStr>()?.value()),
            "priority" => {
                let p: u8 = meta.value()?.parse::<syn::LitInt>()?.base10_parse()?;
                if p > 9 {
                    return Err(meta.error("priority must be 0 (highest) to 9 (lowest)"));
                }
                o.priority = Some(p);
            }
            "acks_late" => o.acks_late = Some(flag(&meta)?),
            "max_retries" => {
                o.max_retries = Some(meta.value()?.parse::<syn::LitInt>()?.base10_parse()?)
            }
            "time_limit" => o.time_limit = Some(number(&meta.value()?.parse::<Lit>()?)?),
            "soft_time_limit" => {
                o.soft_time_limit = Some(number(&meta.value()?.parse::<Lit>()?)?)
            }
            "ignore_result" => o.ignore_result = Some(flag(&meta)?),
            "rate_limit" => o.rate_limit = Some(meta.value()?.parse::<syn::LitStr>()?.value()),
            "default_retry_delay" => {
                o.default_retry_delay = Some(number(&meta.value()?.parse::<Lit>()?)?)
            }
            "retry_backoff" => o.retry_backoff = Some(number(&meta.value()?.parse::<Lit>()?)?),
            "retry_backoff_max" => {
                o.retry_backoff_max = Some(number(&meta.value()?.parse::<Lit>()?)?)
            }
            "retry_jitter" => o.retry_jitter = Some(flag(&meta)?),
            "autoretry_for" => {
                let list: syn::ExprArray = meta.value()?.parse()?;
                for item in list.elems {
                    match item {
                        syn::Expr::Lit(syn::ExprLit { lit: Lit::Str(s), .. }) => {
                            o.autoretry_for.push(s.value())
                        }
                        other => {
                            return Err(syn::Error::new_spanned(
                                other,
                                "autoretry_for takes error type names, e.g. [\"IOError\"]",
                            ))
                        }
                    }
                }
            }
            _ => {
                return Err(meta.error(
                    "unknown task option; expected one of: name, bind, queue, priority, \
                     acks_late, max_retries, time_limit, soft_time_limit, ignore_result, rate_limit, \
                     default_retry_delay, retry_backoff, retry_backoff_max, retry_jitter, autoretry_for",
                ))
            }
        }
        Ok(())
    });
    parser.parse2(attr)?;
    Ok(o)
}

fn number(lit: &Lit) -> syn::Result<f64> {
    match lit {
        Lit::Int(i) => i.base10_parse(),
        Lit::Float(f) => f.base10_parse(),
        other => Err(syn::Error::new_spanned(
            other,
            "expected a number of seconds",
        )),
    }
}

/// `Result<T, E>` → `T`.
fn output_type(ret: &ReturnType) -> syn::Result<Type> {
    let error = || {
        syn::Error::new_spanned(
            ret.to_token_stream(),
            "a task must return Result<T, E> where E: Into<celeriac::TaskError>",
        )
    };
    let ReturnType::Type(_, ty) = ret else {
        return Err(syn::Error::new(
            Span::call_site(),
            "a task must return Result<T, E>",
        ));
    };
    let Type::Path(path) = ty.as_ref() else {
        return Err(error());
    };
    let last = path.path.segments.last().ok_or_else(error)?;
    if last.ident != "Result" {
        return Err(error());
    }
    let PathArguments::AngleBracketed(args) = &last.arguments else {
        return Err(error());
    };
    match args.args.first() {
        Some(GenericArgument::Type(t)) => Ok(t.clone()),
        _ => Err(error()),
    }
}

pub(crate) fn expand(attr: TokenStream, item: TokenStream) -> syn::Result<TokenStream> {
    let options = parse_options(attr)?;
    let func: ItemFn = syn::parse2(item)?;
    let sig = &func.sig;
    if !sig.generics.params.is_empty() {
        return Err(syn::Error::new_spanned(
            &sig.generics,
            "tasks cannot be generic",
        ));
    }
    let ident = &sig.ident;
    let vis = &func.vis;
    let is_async = sig.asyncness.is_some();
    let output = output_type(&sig.output)?;
    let task_name = options.name.clone().unwrap_or_else(|| ident.to_string());
    let docs: Vec<_> = func
        .attrs
        .iter()
        .filter(|a| a.path().is_ident("doc"))
        .collect();

    let mut inputs = sig.inputs.iter();
    let ctx_by_ref = if options.bind {
        match inputs.next() {
            Some(FnArg::Typed(pt)) => matches!(pt.ty.as_ref(), Type::Reference(_)),
            _ => {
                return Err(syn::Error::new_spanned(
                    &sig.inputs,
                    "a bound task's first parameter must be `ctx: &celeriac::Context`",
                ))
            }
        }
    } else {
        false
    };
    let mut names = Vec::new();
    let mut types = Vec::new();
    for arg in inputs {
        let FnArg::Typed(pt) = arg else {
            return Err(syn::Error::new_spanned(arg, "tasks cannot take self"));
        };
        let Pat::Ident(pi) = pt.pat.as_ref() else {
            return Err(syn::Error::new_spanned(
                &pt.pat,
                "task parameters must be plain names (they are matched to Celery kwargs)",
            ));
        };
        if let Type::Reference(r) = pt.ty.as_ref() {
            return Err(syn::Error::new_spanned(
                r,
                "task arguments must be owned (they are decoded from JSON); use String, not &str",
            ));
        }
        names.push(pi.ident.clone());
        types.push((*pt.ty).clone());
    }
    let count = names.len();
    // A raw identifier names a Celery kwarg that is a Rust keyword
    // (`r#match` is the kwarg `match`).
    let name_strs: Vec<String> = names
        .iter()
        .map(|n| syn::ext::IdentExt::unraw(n).to_string())
        .collect();
    let locals: Vec<_> = names.iter().map(|n| format_ident!("__arg_{}", n)).collect();

    let ctx_arg = if !options.bind {
        quote!()
    } else if ctx_by_ref {
        quote!(&__ctx,)
    } else {
        quote!(__ctx.clone(),)
    };
    let encode = quote! {
        ::celeriac::__private::serde_json::to_value(__out)
            .map_err(|e| ::celeriac::TaskError::new("EncodeError", e.to_string()))
    };
    let body_call = if is_async {
        quote! {
            ::std::result::Result::Ok(::celeriac::task::TaskCall::Async(::std::boxed::Box::pin(async move {
                let __out = Self::run(#ctx_arg #(#locals),*).await
                    .map_err(::core::convert::Into::<::celeriac::TaskError>::into)?;
                #encode
            })))
        }
    } else {
        quote! {
            ::std::result::Result::Ok(::celeriac::task::TaskCall::Blocking(::std::boxed::Box::new(move || {
                let __out = Self::run(#ctx_arg #(#locals),*)
                    .map_err(::core::convert::Into::<::celeriac::TaskError>::into)?;
                #encode
            })))
        }
    };

    let opt = |v: Option<TokenStream>| match v {
        Some(t) => quote!(::std::option::Option::Some(#t)),
        None => quote!(::std::option::Option::None),
    };
    let o_queue = opt(options
        .queue
        .as_ref()
        .map(|q| quote!(::std::string::String::from(#q))));
    let o_priority = opt(options.priority.map(|p| quote!(#p)));
    let o_acks_late = opt(options.acks_late.map(|b| quote!(#b)));
    let o_max_retries = opt(options.max_retries.map(|n| quote!(#n)));
    let o_time_limit = opt(options.time_limit.map(|s| quote!(#s)));
    let o_soft = opt(options.soft_time_limit.map(|s| quote!(#s)));
    let o_ignore = opt(options.ignore_result.map(|b| quote!(#b)));
    let o_rate = opt(options
        .rate_limit
        .as_ref()
        .map(|r| quote!(::std::string::String::from(#r))));
    let o_delay = opt(options.default_retry_delay.map(|s| quote!(#s)));
    let o_backoff = opt(options.retry_backoff.map(|s| quote!(#s)));
    let o_backoff_max = opt(options.retry_backoff_max.map(|s| quote!(#s)));
    let o_jitter = opt(options.retry_jitter.map(|b| quote!(#b)));
    let autoretry = &options.autoretry_for;

    let mut run_sig = sig.clone();
    run_sig.ident = format_ident!("run");
    let block = &func.block;
    let fn_attrs: Vec<_> = func
        .attrs
        .iter()
        .filter(|a| !a.path().is_ident("doc"))
        .collect();

    let expanded = quote! {
        #(#docs)*
        #[allow(non_camel_case_types)]
        #[derive(Debug, Clone, Copy, Default)]
        #vis struct #ident;

        impl #ident {
            /// The name this task is registered and sent under.
            pub const NAME: &'static str = #task_name;

            /// The task body, callable directly (e.g. in unit tests).
            #(#fn_attrs)*
            #vis #run_sig #block

            /// A signature of this call (Celery's `.s()`): send it later with
            /// `App::apply_signature`, pass it to `link`, or combine it into a
            /// chain, group or chord.
            ///
            /// # Errors
            /// When an argument cannot be encoded as JSON.
            #vis fn s(#(#names: #types),*) -> ::celeriac::Result<::celeriac::Signature> {
                let args = ::std::vec![#(
                    ::celeriac::__private::serde_json::to_value(&#names).map_err(|e| {
                        ::celeriac::Error::InvalidArgument(::std::format!(
                            "{}: argument '{}' cannot be encoded: {}", #task_name, #name_strs, e
                        ))
                    })?
                ),*];
                ::std::result::Result::Ok(::celeriac::Signature::new(
                    #task_name,
                    args,
                    ::celeriac::__private::serde_json::Map::new(),
                ))
            }

            /// Like [`Self::s`], ignoring a parent's result (Celery's `.si()`).
            ///
            /// # Errors
            /// When an argument cannot be encoded as JSON.
            #vis fn si(#(#names: #types),*) -> ::celeriac::Result<::celeriac::Signature> {
                ::std::result::Result::Ok(Self::s(#(#names),*)?.immutable())
            }

            /// A signature with no arguments yet, for a step whose first
            /// arguments come from its parent (a chain's next link, a chord's
            /// body, a callback): add the rest with `Signature::arg`.
            #vis fn sig() -> ::celeriac::Signature {
                ::celeriac::Signature::new(
                    #task_name,
                    ::std::vec::Vec::new(),
                    ::celeriac::__private::serde_json::Map::new(),
                )
            }

            /// Send this task with default options.
            ///
            /// # Errors
            /// When the broker cannot be written.
            #vis async fn delay(
                app: &::celeriac::App,
                #(#names: #types),*
            ) -> ::celeriac::Result<::celeriac::AsyncResult<#output>> {
                Self::apply_async(app, (#(#names,)*), ::celeriac::SendOptions::new()).await
            }

            /// Send this task with options (countdown, eta, expires, queue, …).
            ///
            /// # Errors
            /// When an argument cannot be encoded or the broker cannot be written.
            #vis async fn apply_async(
                app: &::celeriac::App,
                args: (#(#types,)*),
                options: ::celeriac::SendOptions,
            ) -> ::celeriac::Result<::celeriac::AsyncResult<#output>> {
                let (#(#names,)*) = args;
                let args = ::std::vec![#(
                    ::celeriac::__private::serde_json::to_value(&#names).map_err(|e| {
                        ::celeriac::Error::InvalidArgument(::std::format!(
                            "{}: argument '{}' cannot be encoded: {}", #task_name, #name_strs, e
                        ))
                    })?
                ),*];
                let options = options.with_defaults(&<Self as ::celeriac::Task>::options(&Self));
                let sent = app
                    .send_task(#task_name, args, ::celeriac::__private::serde_json::Map::new(), options)
                    .await?;
                ::std::result::Result::Ok(sent.typed())
            }
        }

        impl ::celeriac::Task for #ident {
            fn name(&self) -> &'static str {
                #task_name
            }

            fn options(&self) -> ::celeriac::TaskOptions {
                ::celeriac::TaskOptions {
                    queue: #o_queue,
                    priority: #o_priority,
                    acks_late: #o_acks_late,
                    max_retries: #o_max_retries,
                    time_limit: #o_time_limit,
                    soft_time_limit: #o_soft,
                    ignore_result: #o_ignore,
                    rate_limit: #o_rate,
                    default_retry_delay: #o_delay,
                    retry_backoff: #o_backoff,
                    retry_backoff_max: #o_backoff_max,
                    retry_jitter: #o_jitter,
                    autoretry_for: ::std::vec![#(::std::string::String::from(#autoretry)),*],
                }
            }

            #[allow(unused_variables, unused_mut)]
            fn call(
                &self,
                __ctx: ::celeriac::Context,
                args: ::std::vec::Vec<::celeriac::__private::serde_json::Value>,
                kwargs: ::celeriac::__private::serde_json::Map<::std::string::String, ::celeriac::__private::serde_json::Value>,
            ) -> ::std::result::Result<::celeriac::task::TaskCall, ::celeriac::TaskError> {
                let mut __reader = ::celeriac::task::ArgReader::new(#task_name, args, kwargs);
                #(let #locals: #types = __reader.next(#name_strs)?;)*
                __reader.finish(#count)?;
                #body_call
            }
        }
    };
    if std::env::var_os("CELERIAC_MACROS_DEBUG").is_some() {
        eprintln!("{expanded}");
    }
    Ok(expanded)
}
