"""Results other systems can read: the DICOM objects RadStation writes besides the report itself.

One module per object, each built with highdicom: presentation states (GSPS) for measurements and the
display in use, TID 1500 measurement reports, key object selections, the AI results SR, explanation maps
as SEG and Parametric Map. `classify` says which stored objects are acquired images and which are
derived, synthetic or documents (never evidence, never default key images).
"""
